"""``/api/v1/promotions``: ask for a promotion of a built digest, and read the history."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from pipeline import promotion
from pipeline.access import Principal, check_role
from pipeline.api import _examples as ex
from pipeline.api.deps import ActorDep, Allowed, ConfigDep, DatabaseDep, SessionDep
from pipeline.api.pagination import page
from pipeline.api.params import Cursor, Id, PageSize, Since, Until
from pipeline.api.problems import problem_responses
from pipeline.api.schemas import PromotionOut, PromotionPage, PromotionRequest
from pipeline.errors import PolicyViolation
from pipeline.store import Promotion, promotions
from pipeline.types import DIGEST_PATTERN

router = APIRouter(
    prefix="/api/v1/promotions",
    tags=["promotions"],
    dependencies=[Depends(Allowed("viewer"))],
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)

PromotionStatus = Literal["pending", "running", "awaiting_merge", "succeeded", "failed", "rejected"]
PromotionId = Annotated[Id, Path(description="the promotion's id", examples=[ex.PROMOTION_ID])]


def accepted(row: Promotion) -> PromotionOut:
    """The queued promotion, or the policy's refusal (already recorded) as a 409 problem."""
    if row.status == "rejected":
        raise PolicyViolation(f"promotion {row.id} refused: {row.error}")
    return PromotionOut.model_validate(row)


def _may_promote(body: PromotionRequest, principal: Annotated[Principal, Depends(Allowed("promoter"))]) -> None:
    check_role(principal, "promoter", body.environment)


@router.post(
    "",
    response_model=PromotionOut,
    status_code=202,
    summary="Promote a built digest to an environment",
    description=(
        "Queues a promotion of a digest a succeeded build of the project made (name the digest or the "
        "build) into one of its environments; a worker copies it by digest, brings its signatures, "
        "writes it to Git where configured and moves the environment tag last. 409 when the "
        "environment's policy refuses it now (rejected digest, not yet in the stage before, held "
        "environment): the refusal is recorded. Needs a promoter token allowed the environment."
    ),
    responses=problem_responses(
        401,
        403,
        404,
        409,
        422,
        examples={
            403: ex.forbidden(ex.BUILDER_TOKEN, "builder", "promoter"),
            409: {
                "type": "/problems/policy",
                "title": "Promotion refused by policy",
                "detail": f"promotion {ex.ROLLBACK_PROMOTION_ID + 1} refused: {ex.PREVIOUS_DIGEST} has not "
                "reached staging yet; prod takes only digests promoted to staging first",
            },
            422: {"detail": "give exactly one of digest or build_id"},
        },
    ),
    dependencies=[Depends(_may_promote)],
)
def create_promotion(body: PromotionRequest, db: DatabaseDep, config: ConfigDep, actor: ActorDep) -> PromotionOut:
    with db.session(immediate=True) as session:
        row = promotion.request_promotion(
            session,
            config,
            body.project,
            body.environment,
            digest=body.digest,
            build_id=body.build_id,
            actor=actor,
            reason=body.reason,
        )
    return accepted(row)


@router.get(
    "",
    response_model=PromotionPage,
    summary="Promotion history, newest first",
    description=(
        "Every promotion, newest first, filtered by any of project, environment, status, digest, actor, "
        "trigger and creation time. Pages hold `limit` promotions; pass the answer's `next_cursor` as "
        "`cursor` for the next one. Needs a viewer token."
    ),
)
def list_promotions(
    session: SessionDep,
    project: Annotated[str | None, Query(description="only this project's promotions", examples=[ex.PROJECT])] = None,
    environment: Annotated[
        str | None, Query(description="only promotions into this environment", examples=["prod"])
    ] = None,
    status: Annotated[PromotionStatus | None, Query(description="only promotions in this status")] = None,
    digest: Annotated[
        str | None,
        Query(pattern=f"^{DIGEST_PATTERN}$", description="only promotions of this digest", examples=[ex.DIGEST]),
    ] = None,
    actor: Annotated[
        str | None,
        Query(description="only promotions this token name (or `auto`) asked for", examples=[ex.PROMOTER_TOKEN]),
    ] = None,
    trigger: Annotated[
        Literal["manual", "auto", "rollback"] | None, Query(description="only promotions asked for so")
    ] = None,
    since: Since = None,
    until: Until = None,
    limit: PageSize = 50,
    cursor: Cursor = None,
) -> PromotionPage:
    where = promotions.PromotionFilter(project, environment, status, digest, actor, trigger, since, until)
    rows, next_cursor = page(
        lambda n, before: promotions.list_promotions(session, where, limit=n, before=before),
        limit,
        cursor,
        by_time=since is not None or until is not None,
    )
    return PromotionPage(items=[PromotionOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{promotion_id}",
    response_model=PromotionOut,
    summary="One promotion with its steps",
    description=(
        "The promotion's state: status, source and target references, the steps it ran with their "
        "messages, the Git commit or pull request it wrote, and the error if it failed. Needs a viewer "
        "token."
    ),
    responses=problem_responses(404, examples={404: {"detail": "no promotion with id 99"}}),
)
def get_promotion(promotion_id: PromotionId, session: SessionDep) -> PromotionOut:
    return PromotionOut.model_validate(promotions.get_promotion(session, promotion_id))
