"""``/api/v1/deliveries``: the webhook delivery log, and Redeliver of a stored delivery."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from pipeline import intake
from pipeline.api import _examples_deliveries as ex
from pipeline.api.deps import ActorDep, Allowed, ConfigDep, DatabaseDep, SessionDep
from pipeline.api.pagination import decode_cursor, encode_cursor
from pipeline.api.params import Cursor, Id, PageSize, Since
from pipeline.api.problems import problem_responses
from pipeline.api.schemas import WebhookAnswer
from pipeline.api.schemas_deliveries import DeliveryOut, DeliveryPage
from pipeline.errors import NotFound
from pipeline.store import Delivery, delivery_log
from pipeline.store.pages import Before

router = APIRouter(
    prefix="/api/v1/deliveries",
    tags=["deliveries"],
    dependencies=[Depends(Allowed("viewer"))],
    responses=problem_responses(400, 401, 403, 404, 422),
)

DeliveryId = Annotated[Id, Path(description="the delivery's id in the log", examples=[ex.DELIVERY_ID])]


def delivery_out(row: Delivery, builds: list[int]) -> DeliveryOut:
    out = DeliveryOut.model_validate(row)
    return out.model_copy(update={"build_ids": builds, "body_kept": row.body is not None})


@router.get(
    "",
    response_model=DeliveryPage,
    summary="List webhook deliveries, newest first",
    description=(
        "Every delivery the webhook endpoint received, refused ones included (bad signature, unknown "
        "repository, malformed, duplicate), with its outcome, the HTTP status it was answered, and the "
        "builds it queued; never a secret or a signature. Filter by project, provider, outcome and time; "
        "pass the answer's `next_cursor` as `cursor` for the next page. Needs a viewer token."
    ),
)
def list_deliveries(
    session: SessionDep,
    project: Annotated[str | None, Query(max_length=63, description="only this project's", examples=["hello"])] = None,
    provider: Annotated[
        str | None, Query(max_length=20, description="only from this provider", examples=["github"])
    ] = None,
    outcome: Annotated[
        str | None, Query(max_length=20, description="only with this outcome", examples=["bad_signature"])
    ] = None,
    since: Since = None,
    limit: PageSize = 50,
    cursor: Cursor = None,
) -> DeliveryPage:
    where = delivery_log.DeliveryFilter(project, provider, outcome, since)
    found = delivery_log.list_deliveries(session, where, limit=limit + 1, before=decode_cursor(cursor))
    rows = found[:limit]
    next_cursor = encode_cursor(Before(rows[-1].id)) if len(found) > limit else None
    builds = delivery_log.build_ids(session, [r.id for r in rows])
    return DeliveryPage(items=[delivery_out(r, builds[r.id]) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{delivery_id}",
    response_model=DeliveryOut,
    summary="One webhook delivery",
    description="The delivery's log row and the builds it queued. Needs a viewer token.",
    responses=problem_responses(404, examples={404: {"detail": "no delivery 99"}}),
)
def get_delivery(delivery_id: DeliveryId, session: SessionDep) -> DeliveryOut:
    row = delivery_log.get_delivery(session, delivery_id)
    if row is None:
        raise NotFound(f"no delivery {delivery_id}")
    return delivery_out(row, delivery_log.build_ids(session, [row.id])[row.id])


@router.post(
    "/{delivery_id}/redeliver",
    response_model=WebhookAnswer,
    summary="Run intake again on a stored delivery",
    description=(
        "Runs intake again on the delivery's stored body, as the Git host's own Redeliver button does: "
        "the same project match and filters, a new log row pointing at the original, and never a "
        "duplicate of it. Its signature verified when it first arrived, so it is not checked again. "
        "Answers as the webhook would (202 with the queued builds, 200 with a reason). 404 when the "
        "delivery or its body (kept for intake.keep_bodies_days) is gone. Needs a builder token."
    ),
    status_code=202,
    responses={
        202: {"description": "intake ran again", "content": {"application/json": {"example": ex.REDELIVERED}}},
        **problem_responses(404, examples={404: {"detail": "delivery 99 has no stored body"}}),
    },
    dependencies=[Depends(Allowed("builder"))],
)
def redeliver(delivery_id: DeliveryId, db: DatabaseDep, config: ConfigDep, actor: ActorDep) -> JSONResponse:
    result = intake.redeliver(db, config, delivery_id, actor)
    return JSONResponse(WebhookAnswer.model_validate(result.body()).model_dump(), status_code=result.status_code)
