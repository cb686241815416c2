"""Response and request bodies of the REST API (kept apart from the ORM tables)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BuildOut", "BuildPage", "BuildRequest", "LogLine", "LogPage", "WebhookAnswer"]


class BuildOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project: str
    commit: str
    branch: str | None
    ref: str
    trigger: str
    status: str
    build_args: dict[str, Any]
    image: str | None
    tags: list[str]
    digest: str | None
    engine: str | None
    builder_mode: str | None
    error: str | None
    attempts: int
    worker: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    not_before: dt.datetime | None = None
    steps_total: int | None = None
    steps_cached: int | None = None
    cache_from: list[str] = []
    image_size: int | None = None
    layers: list[dict[str, Any]] = []
    insight: dict[str, Any] | None = None
    advice: list[dict[str, Any]] = []


class BuildRequest(BaseModel):
    """Build a branch or tag as it is now, or an exact commit."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"project": "hello", "ref": "main"}]})

    project: str
    ref: str | None = Field(default=None, max_length=255)
    commit: str | None = Field(default=None, pattern="^[0-9a-f]{40}$")


class BuildPage(BaseModel):
    items: list[BuildOut]
    next_cursor: str | None


class LogLine(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    line: str
    created_at: dt.datetime


class LogPage(BaseModel):
    build_id: int
    status: str
    lines: list[LogLine]
    next_seq: int


class WebhookAnswer(BaseModel):
    outcome: str
    reason: str
    project: str | None
    build_ids: list[int]
