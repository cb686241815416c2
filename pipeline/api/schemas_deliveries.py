"""API shapes of the delivery log, beside ``schemas`` (the ORM rows stay in ``store.tables``)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from pipeline.api import _examples_deliveries as ex

__all__ = ["DeliveryOut", "DeliveryPage"]

OUTCOMES = (
    "queued, coalesced (a build of the same commit was already under way), ignored (with the reason), "
    "duplicate, pong, or a refusal: bad_signature, unknown_repository, unknown_provider, malformed, "
    "too_large, unsupported_media"
)


class DeliveryOut(BaseModel):
    """One webhook delivery as it arrived and what became of it; never its secret or signature."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [ex.DELIVERY, ex.REFUSED_DELIVERY]})

    id: int
    provider: str
    delivery_id: str = Field(description="the sender's own id (X-GitHub-Delivery, X-Request-UUID, ...)")
    hook_id: str = Field(description="the hook it came through, or GitLab's hook kind (system, project)")
    event: str
    project: str | None = Field(description="the matched project; null when refused before one matched")
    repository: str | None
    ref: str | None
    before: str | None
    after: str | None
    outcome: str = Field(description=OUTCOMES)
    reason: str
    status_code: int = Field(description="the HTTP status the sender was answered")
    size: int = Field(description="the body's size in bytes")
    remote_addr: str | None
    received_at: dt.datetime
    build_ids: list[int] = Field(default=[], description="the builds this delivery queued")
    body_kept: bool = Field(default=False, description="its body is still stored, so it can be redelivered")
    redelivery_of: int | None = Field(default=None, description="the delivery this one redelivered")


class DeliveryPage(BaseModel):
    """A page of deliveries, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [ex.DELIVERY_PAGE]})

    items: list[DeliveryOut]
    next_cursor: str | None
