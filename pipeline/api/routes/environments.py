"""``/api/v1/environments``: what runs where, and rollback / release of one environment."""

from __future__ import annotations

from fastapi import APIRouter

from pipeline import promotion
from pipeline.api.deps import ActorDep, ConfigDep, DatabaseDep, SessionDep
from pipeline.api.problems import problem_responses
from pipeline.api.routes.promotions import accepted
from pipeline.api.schemas import Arrival, EnvironmentMatrix, EnvironmentOut, HoldOut, PromotionOut, ReasonBody
from pipeline.store import Build, Promotion

router = APIRouter(prefix="/api/v1/environments", tags=["environments"])


def _arrival(row: Promotion | None, build: Build | None = None) -> Arrival | None:
    if row is None:
        return None
    return Arrival(promotion_id=row.id, digest=row.digest, build_id=row.build_id, actor=row.actor,
                   trigger=row.trigger, since=row.finished_at,
                   commit=build.commit if build else None, branch=build.branch if build else None)


@router.get("", response_model=EnvironmentMatrix, summary="Every project's environments: digest, commit, since, by whom")
def environment_matrix(session: SessionDep, config: ConfigDep, project: str | None = None) -> EnvironmentMatrix:
    states = promotion.environment_matrix(session, config, project)
    return EnvironmentMatrix(items=[
        EnvironmentOut(project=s.project, environment=s.environment, registry=s.registry, repository=s.repository,
                       current=_arrival(s.current, s.build), previous=_arrival(s.previous),
                       held=HoldOut.model_validate(s.hold) if s.hold else None, waiting=s.waiting)
        for s in states
    ])


@router.post("/{project}/{environment}/rollback", response_model=PromotionOut, status_code=202,
             summary="Promote what ran before, and hold auto-promotion until released",
             responses=problem_responses(404, 409))
def rollback(project: str, environment: str, db: DatabaseDep, config: ConfigDep, actor: ActorDep,
             body: ReasonBody | None = None) -> PromotionOut:
    with db.session() as session:
        row = promotion.request_rollback(session, config, project, environment, actor=actor,
                                         reason=body.reason if body else "")
    return accepted(row)


@router.post("/{project}/{environment}/release", response_model=HoldOut,
             summary="Let auto-promotion into the environment resume", responses=problem_responses(404))
def release(project: str, environment: str, session: SessionDep, config: ConfigDep, actor: ActorDep) -> HoldOut:
    return HoldOut.model_validate(promotion.release_environment(session, config, project, environment, actor=actor))
