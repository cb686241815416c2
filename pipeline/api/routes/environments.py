"""``/api/v1/environments``: what runs where, and rollback / release of one environment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from pipeline import promotion
from pipeline.access import Principal, check_role
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
)
from pipeline.store import Build, Promotion

router = APIRouter(prefix="/api/v1/environments", tags=["environments"], dependencies=[Depends(Allowed("viewer"))],
                   responses=problem_responses(400, 401, 403, 404, 409, 422))


def _may_change(environment: str, principal: Annotated[Principal, Depends(Allowed("promoter"))]) -> None:
    check_role(principal, "promoter", environment)


PROMOTER = [Depends(_may_change)]


def _arrival(row: Promotion | None, build: Build | None = None) -> Arrival | None:
    if row is None:
        return None
    return Arrival(promotion_id=row.id, digest=row.digest, build_id=row.build_id, actor=row.actor,
                   trigger=row.trigger, since=row.finished_at,
                   commit=build.commit if build else None, branch=build.branch if build else None)


@router.get("", response_model=EnvironmentMatrix, summary="Every project's environments: digest, commit, since, by whom")
def environment_matrix(session: SessionDep, config: ConfigDep, project: str | None = None,
                       window_days: Annotated[int, Query(ge=1, le=366)] = 30) -> EnvironmentMatrix:
    states = promotion.environment_matrix(session, config, project, window_days)
    return EnvironmentMatrix(items=[
        EnvironmentOut(project=s.project, environment=s.environment, registry=s.registry, repository=s.repository,
                       current=_arrival(s.current, s.build), previous=_arrival(s.previous),
                       held=HoldOut.model_validate(s.hold) if s.hold else None, waiting=s.waiting,
                       lead_time=LeadTimeOut.model_validate(s.lead_time) if s.lead_time else None)
        for s in states
    ])


@router.post("/{project}/{environment}/rollback", response_model=PromotionOut, status_code=202,
             summary="Promote what ran before, and hold auto-promotion until released",
             responses=problem_responses(401, 403, 404, 409), dependencies=PROMOTER)
def rollback(project: str, environment: str, db: DatabaseDep, config: ConfigDep, actor: ActorDep,
             body: ReasonBody | None = None) -> PromotionOut:
    with db.session(immediate=True) as session:
        row = promotion.request_rollback(session, config, project, environment, actor=actor,
                                         reason=body.reason if body else "")
    return accepted(row)


@router.post("/{project}/{environment}/release", response_model=HoldOut,
             summary="Let auto-promotion into the environment resume", responses=problem_responses(401, 403, 404),
             dependencies=PROMOTER)
def release(project: str, environment: str, session: SessionDep, config: ConfigDep, actor: ActorDep) -> HoldOut:
    return HoldOut.model_validate(promotion.release_environment(session, config, project, environment, actor=actor))
