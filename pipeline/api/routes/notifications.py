"""``/api/v1/notifications``: the outbox of commit statuses, deployments and notifications,
so ops can see what was told to whom, what is still waiting, and which are dead letters."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from pipeline.api import _examples as ex
from pipeline.api.deps import Allowed, SessionDep
from pipeline.api.pagination import page
from pipeline.api.params import Cursor, PageSize
from pipeline.api.problems import problem_responses
from pipeline.store import notifications

router = APIRouter(
    prefix="/api/v1/notifications",
    tags=["notifications"],
    dependencies=[Depends(Allowed("viewer"))],
    responses=problem_responses(400, 401, 403, 422),
)

NOTIFICATION: dict[str, Any] = {
    "id": 7,
    "kind": "status",
    "target": f"status:{ex.PROJECT}",
    "subject": "build:42",
    "event": "build.success",
    "project": ex.PROJECT,
    "environment": None,
    "build_id": 42,
    "promotion_id": None,
    "payload": {
        "provider": "github",
        "sha": ex.COMMIT,
        "state": "success",
        "context": "pipeline/build",
        "description": f"built {ex.DIGEST}",
        "target_url": "https://pipeline.example.com/api/v1/builds/42",
    },
    "result": None,
    "response_code": 201,
    "status": "delivered",
    "error": None,
    "attempts": 1,
    "created_at": "2025-05-14T09:12:04Z",
    "started_at": "2025-05-14T09:12:04Z",
    "finished_at": "2025-05-14T09:12:05Z",
}
DEAD: dict[str, Any] = NOTIFICATION | {
    "id": 8,
    "kind": "slack",
    "target": "ops-chat",
    "event": "build.succeeded",
    "payload": {"title": f"{ex.PROJECT}: build 42 of main succeeded", "link": None, "data": {}},
    "response_code": None,
    "status": "dead",
    "error": "slack target ops-chat at https://hooks.slack.com refused it with 404: channel_not_found",
}


class NotificationOut(BaseModel):
    """One delivery: what it says (never a token or signature), and what became of it."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [NOTIFICATION, DEAD]})

    id: int
    kind: str = Field(description="status, deployment (GitHub), webhook or slack")
    target: str = Field(description="status:<project> for the Git host, else the notification target's name")
    subject: str
    event: str
    project: str
    environment: str | None
    build_id: int | None
    promotion_id: int | None
    payload: dict[str, Any]
    result: dict[str, Any] | None
    response_code: int | None
    status: str = Field(description="pending, running, delivered or dead (the dead letter: see error)")
    error: str | None
    attempts: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class NotificationPage(BaseModel):
    """A page of deliveries, newest first, with how many are in each status."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [DEAD, NOTIFICATION],
                    "next_cursor": None,
                    "counts": {"pending": 0, "running": 0, "delivered": 1, "dead": 1},
                }
            ]
        }
    )

    items: list[NotificationOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last one")
    counts: dict[str, int] = Field(description="rows per status, all of them (not just this page)")


@router.get(
    "",
    response_model=NotificationPage,
    summary="List commit statuses, deployments and notifications",
    description=(
        "Every status, deployment report and notification is a row delivered by a worker with "
        "retries; this lists them newest first, with the receiver's answer code and, for a dead "
        "letter, why it was given up. Filter by status, project, target, kind, build or promotion. "
        "Needs a viewer token."
    ),
)
def list_notifications(
    session: SessionDep,
    status: Annotated[
        Literal["pending", "running", "delivered", "dead"] | None, Query(description="only rows in this status")
    ] = None,
    project: Annotated[
        str | None, Query(max_length=63, description="only this project's", examples=[ex.PROJECT])
    ] = None,
    target: Annotated[
        str | None, Query(max_length=100, description="a target's name, or status:<project>", examples=["ops-chat"])
    ] = None,
    kind: Annotated[
        Literal["status", "deployment", "webhook", "slack"] | None, Query(description="only this kind")
    ] = None,
    build_id: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="only this build's", examples=[42])] = None,
    promotion_id: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="only this promotion's")] = None,
    limit: PageSize = 50,
    cursor: Cursor = None,
) -> NotificationPage:
    where = notifications.NotificationFilter(status, project, target, kind, build_id, promotion_id)
    rows, next_cursor = page(
        lambda n, before: notifications.list_notifications(session, where, limit=n, before=before),
        limit,
        cursor,
        by_time=False,
    )
    return NotificationPage(
        items=[NotificationOut.model_validate(r) for r in rows],
        next_cursor=next_cursor,
        counts=notifications.counts(session),
    )
