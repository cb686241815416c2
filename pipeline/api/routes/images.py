"""``/api/v1/images/{digest}``: an image's lineage, and rejecting a digest for good."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from pipeline import promotion
from pipeline.access import Principal
from pipeline.api import _examples as ex
from pipeline.api.deps import ActorDep, Allowed, ConfigDep, SessionDep
from pipeline.api.problems import problem_responses
from pipeline.api.schemas import AttestationsOut, BuildOut, ImageOut, PromotionOut, ReasonBody, RejectionOut
from pipeline.errors import Forbidden
from pipeline.types import DIGEST_PATTERN

router = APIRouter(
    prefix="/api/v1/images",
    tags=["images"],
    dependencies=[Depends(Allowed("viewer"))],
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)


def _may_reject(principal: Annotated[Principal, Depends(Allowed("promoter"))]) -> None:
    """A rejection holds for every environment, so a promoter limited to some may not make one."""
    if principal.environments is not None:
        raise Forbidden(
            f"{principal.name} may promote only to {', '.join(principal.environments)}; rejecting a "
            "digest for every environment needs an unlimited promoter"
        )


Digest = Annotated[
    str,
    Path(
        pattern=f"^{DIGEST_PATTERN}$",
        examples=[ex.DIGEST],
        description="the image manifest's digest, as a build reported it",
    ),
]


@router.get(
    "/{digest}",
    response_model=ImageOut,
    summary="Which build made a digest and where it has been",
    description=(
        "The digest's lineage: every build that pushed it (with its provenance), every promotion of it, "
        "whether it is rejected, and the environments it runs in now. With `attestations=true` the "
        "service also reads the digest's `.att` tag from the registry and verifies it with the signing "
        "key. Needs a viewer token; 404 when no build or promotion knows the digest."
    ),
    responses=problem_responses(404, examples={404: {"detail": f"no build or promotion knows {ex.UNKNOWN_DIGEST}"}}),
)
def image(
    digest: Digest,
    session: SessionDep,
    config: ConfigDep,
    attestations: Annotated[
        bool,
        Query(
            description="also look at the .att tag in the registry and verify it "
            "with the signing key (a few registry requests)"
        ),
    ] = False,
) -> ImageOut:
    found = promotion.image_lineage(session, config, digest)
    checked = promotion.attestation_status(config, found) if attestations else None
    return ImageOut(
        digest=digest,
        builds=[BuildOut.model_validate(b) for b in found.builds],
        promotions=[PromotionOut.model_validate(p) for p in found.promotions],
        rejected=RejectionOut.model_validate(found.rejection) if found.rejection else None,
        running_in=found.environments,
        provenance=found.provenance,
        attestations=AttestationsOut.model_validate(checked, from_attributes=True) if checked else None,
    )


@router.post(
    "/{digest}/reject",
    response_model=RejectionOut,
    summary="Block a digest from every further promotion",
    description=(
        "Records the digest as rejected, with the reason (required): every later promotion of it, to any "
        "environment, is refused with the reason, and pending ones are refused when a worker takes "
        "them. What runs now is not touched: roll back where it runs. Needs a promoter token that is not "
        "limited to some environments."
    ),
    responses=problem_responses(
        401,
        403,
        422,
        examples={
            403: {
                "detail": f"{ex.PROMOTER_TOKEN} may promote only to prod; rejecting a digest for every "
                "environment needs an unlimited promoter"
            },
            422: {"detail": "say why the digest is rejected (reason): it is shown to whoever tries to promote it"},
        },
    ),
    dependencies=[Depends(_may_reject)],
)
def reject(digest: Digest, body: ReasonBody, session: SessionDep, actor: ActorDep) -> RejectionOut:
    return RejectionOut.model_validate(promotion.reject_digest(session, digest, actor=actor, reason=body.reason))
