"""``/api/v1/environments``: what runs where, and rollback / release of one environment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from pipeline import promotion
from pipeline.access import Principal, check_role
from pipeline.api import _examples as ex
from pipeline.api.deps import ActorDep, Allowed, ConfigDep, DatabaseDep, SessionDep
from pipeline.api.problems import problem_responses
from pipeline.api.routes.promotions import accepted
from pipeline.api.schemas import (
    Arrival,
    EnvironmentMatrix,
    EnvironmentOut,
    HoldOut,
    LeadTimeOut,
    PromotionOut,
    ReasonBody,
    RejectionOut,
)
from pipeline.store import Build, Promotion

router = APIRouter(
    prefix="/api/v1/environments",
    tags=["environments"],
    dependencies=[Depends(Allowed("viewer"))],
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)


Project = Annotated[str, Path(description="the project, as named in the config", examples=[ex.PROJECT])]
Environment = Annotated[str, Path(description="one of the project's environments", examples=["prod"])]


def _may_change(environment: Environment, principal: Annotated[Principal, Depends(Allowed("promoter"))]) -> None:
    check_role(principal, "promoter", environment)


PROMOTER = [Depends(_may_change)]


def _arrival(row: Promotion | None, build: Build | None = None) -> Arrival | None:
    if row is None:
        return None
    return Arrival(
        promotion_id=row.id,
        digest=row.digest,
        build_id=row.build_id,
        actor=row.actor,
        trigger=row.trigger,
        since=row.finished_at,
        commit=build.commit if build else None,
        branch=build.branch if build else None,
    )


@router.get(
    "",
    response_model=EnvironmentMatrix,
    summary="Every project's environments: digest, commit, since, by whom",
    description=(
        "What runs where: for every configured project and environment (in config order) the digest "
        "running now, the promotion and build that put it there, what a rollback would restore, whether "
        "the environment is held, how many promotions are waiting, and the lead time from push to "
        "arrival. A digest rejected after it arrived is flagged (`rejected`), and the rejected digests a "
        "rollback would pass over are listed (`skipped`). Needs a viewer token."
    ),
)
def environment_matrix(
    session: SessionDep,
    config: ConfigDep,
    project: Annotated[str | None, Query(description="only this project's environments", examples=[ex.PROJECT])] = None,
    window_days: Annotated[
        int, Query(ge=1, le=366, description="days of promotions the lead time is computed over", examples=[30])
    ] = 30,
) -> EnvironmentMatrix:
    states = promotion.environment_matrix(session, config, project, window_days)
    return EnvironmentMatrix(
        items=[
            EnvironmentOut(
                project=s.project,
                environment=s.environment,
                registry=s.registry,
                repository=s.repository,
                current=_arrival(s.current, s.build),
                previous=_arrival(s.previous),
                held=HoldOut.model_validate(s.hold) if s.hold else None,
                waiting=s.waiting,
                lead_time=LeadTimeOut.model_validate(s.lead_time) if s.lead_time else None,
                rejected=RejectionOut.model_validate(s.rejected) if s.rejected else None,
                skipped=[RejectionOut.model_validate(k.rejection) for k in s.skipped],
            )
            for s in states
        ]
    )


_ROLLBACK_PROBLEMS = problem_responses(
    401,
    403,
    404,
    409,
    examples={
        403: ex.forbidden(ex.BUILDER_TOKEN, "builder", "promoter"),
        404: {"detail": "project has no environment 'production' (defined: ['staging', 'prod'])"},
        409: {
            "detail": f"{ex.PROJECT}/staging runs {ex.DIGEST} from promotion {ex.STAGING_PROMOTION_ID} and nothing "
            "ran before it; there is nothing to roll back to"
        },
    },
)


@router.post(
    "/{project}/{environment}/rollback",
    response_model=PromotionOut,
    status_code=202,
    summary="Promote what ran before, and hold auto-promotion until released",
    description=(
        "Queues a promotion (trigger `rollback`) of the digest the environment ran before its current "
        "one (passing over rejected digests to the newest earlier one that is not; the reason names "
        "each one skipped), and holds the environment so that auto-promotion cannot undo the rollback; release it "
        "with `POST .../release` once a fix is out. The optional reason is recorded on the promotion. "
        "Needs a promoter token allowed this environment; 409 when nothing ran before, every earlier "
        "digest is rejected, or the policy refuses the digest."
    ),
    responses={
        202: {
            "description": "the rollback promotion, queued",
            "content": {"application/json": {"example": ex.ROLLBACK}},
        },
        **_ROLLBACK_PROBLEMS,
    },
    openapi_extra={"requestBody": {"content": {"application/json": {"example": ex.ROLLBACK_REASON}}}},
    dependencies=PROMOTER,
)
def rollback(
    project: Project,
    environment: Environment,
    db: DatabaseDep,
    config: ConfigDep,
    actor: ActorDep,
    body: ReasonBody | None = None,
) -> PromotionOut:
    with db.session(immediate=True) as session:
        row = promotion.request_rollback(
            session, config, project, environment, actor=actor, reason=body.reason if body else ""
        )
    return accepted(row)


@router.post(
    "/{project}/{environment}/release",
    response_model=HoldOut,
    summary="Let auto-promotion into the environment resume",
    description=(
        "Ends the environment's hold (placed by a rollback) and answers the hold with who released it "
        "and when; auto-promotion into the environment resumes with the next build or arrival. Needs a "
        "promoter token allowed this environment; 404 when the environment is not held."
    ),
    responses={
        200: {"description": "the hold, now released", "content": {"application/json": {"example": ex.RELEASED_HOLD}}},
        **problem_responses(
            401,
            403,
            404,
            examples={
                403: ex.forbidden(ex.BUILDER_TOKEN, "builder", "promoter"),
                404: {"detail": f"{ex.PROJECT}/prod is not held"},
            },
        ),
    },
    dependencies=PROMOTER,
)
def release(
    project: Project, environment: Environment, session: SessionDep, config: ConfigDep, actor: ActorDep
) -> HoldOut:
    return HoldOut.model_validate(promotion.release_environment(session, config, project, environment, actor=actor))
