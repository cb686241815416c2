"""``/api/v1/promotions``: ask for a promotion of a built digest, and read the history."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from pipeline import promotion
from pipeline.access import Principal, check_role
from pipeline.api.deps import ActorDep, Allowed, ConfigDep, DatabaseDep, SessionDep
from pipeline.api.pagination import decode_cursor, split_page
from pipeline.api.params import Id, Moment
from pipeline.api.problems import problem_responses
from pipeline.api.schemas import PromotionOut, PromotionPage, PromotionRequest
from pipeline.errors import PolicyViolation
from pipeline.store import Promotion, promotions

router = APIRouter(prefix="/api/v1/promotions", tags=["promotions"], dependencies=[Depends(Allowed("viewer"))],
                   responses=problem_responses(400, 401, 403, 404, 409, 422))

PromotionStatus = Literal["pending", "running", "awaiting_merge", "succeeded", "failed", "rejected"]


def accepted(row: Promotion) -> PromotionOut:
    """The queued promotion, or the policy's refusal (already recorded) as a 409 problem."""
    if row.status == "rejected":
        raise PolicyViolation(f"promotion {row.id} refused: {row.error}")
    return PromotionOut.model_validate(row)


def _may_promote(body: PromotionRequest, principal: Annotated[Principal, Depends(Allowed("promoter"))]) -> None:
    check_role(principal, "promoter", body.environment)


@router.post("", response_model=PromotionOut, status_code=202, summary="Promote a built digest to an environment",
             responses=problem_responses(401, 403, 404, 409, 422), dependencies=[Depends(_may_promote)])
def create_promotion(body: PromotionRequest, db: DatabaseDep, config: ConfigDep, actor: ActorDep) -> PromotionOut:
    with db.session(immediate=True) as session:
        row = promotion.request_promotion(session, config, body.project, body.environment, digest=body.digest,
                                          build_id=body.build_id, actor=actor, reason=body.reason)
    return accepted(row)


@router.get("", response_model=PromotionPage, summary="Promotion history, newest first")
def list_promotions(
    session: SessionDep,
    project: str | None = None,
    environment: str | None = None,
    status: PromotionStatus | None = None,
    digest: Annotated[str | None, Query(pattern="^sha256:[0-9a-f]{64}$")] = None,
    actor: str | None = None,
    trigger: Literal["manual", "auto", "rollback"] | None = None,
    since: Moment = None,
    until: Moment = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> PromotionPage:
    where = promotions.PromotionFilter(project, environment, status, digest, actor, trigger, since, until)
    rows = promotions.list_promotions(session, where, limit=limit + 1,
                                      before_id=decode_cursor(cursor) if cursor else None)
    page, next_cursor = split_page(rows, limit)
    return PromotionPage(items=[PromotionOut.model_validate(r) for r in page], next_cursor=next_cursor)


@router.get("/{promotion_id}", response_model=PromotionOut, summary="One promotion with its steps",
            responses=problem_responses(404))
def get_promotion(promotion_id: Id, session: SessionDep) -> PromotionOut:
    return PromotionOut.model_validate(promotions.get_promotion(session, promotion_id))
