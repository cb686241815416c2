"""Response and request bodies of the REST API (kept apart from the ORM tables)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Arrival",
    "AttestationsOut",
    "BuildOut",
    "BuildPage",
    "BuildRequest",
    "EnvironmentMatrix",
    "EnvironmentOut",
    "HoldOut",
    "ImageOut",
    "LogLine",
    "LeadTimeOut",
    "LogPage",
    "NewToken",
    "PromotionOut",
    "PromotionPage",
    "PromotionRequest",
    "ReasonBody",
    "RejectionOut",
    "TokenOut",
    "TokenRequest",
    "WebhookAnswer",
]


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
    provenance: dict[str, Any] | None = Field(
        default=None, description="in-toto statement (SLSA provenance v1) of the digest this build made")


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


class PromotionRequest(BaseModel):
    """Promote the digest a build made: name the digest or the build."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"project": "hello", "environment": "staging", "build_id": 42},
        {"project": "hello", "environment": "prod", "digest": "sha256:" + "0" * 64, "reason": "release 1.4"}]})

    project: str = Field(max_length=63)
    environment: str = Field(max_length=63)
    digest: str | None = Field(default=None, max_length=80)
    build_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    reason: str = Field(default="", max_length=2000)


class PromotionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project: str
    environment: str
    digest: str
    build_id: int | None
    status: str
    trigger: str
    actor: str
    reason: str
    source_ref: str | None
    target_ref: str | None
    previous_digest: str | None
    rollback_to_id: int | None
    restores_id: int | None
    copy_report: dict[str, Any] | None
    gitops_commit: str | None = None
    gitops_pull_request: str | None = None
    steps: list[dict[str, Any]]
    error: str | None
    attempts: int
    worker: str | None = None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class PromotionPage(BaseModel):
    items: list[PromotionOut]
    next_cursor: str | None


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)


class HoldOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    project: str
    environment: str
    reason: str
    actor: str
    promotion_id: int | None
    created_at: dt.datetime
    released_at: dt.datetime | None
    released_by: str | None


class Arrival(BaseModel):
    """A digest's stay in an environment: which promotion put it there, from which build."""

    promotion_id: int
    digest: str
    build_id: int | None
    commit: str | None = None
    branch: str | None = None
    actor: str
    trigger: str
    since: dt.datetime | None


class LeadTimeOut(BaseModel):
    """Push to arrival over the window (rollbacks left out)."""

    model_config = ConfigDict(from_attributes=True)

    median_seconds: float
    p90_seconds: float
    samples: int
    window_days: int


class EnvironmentOut(BaseModel):
    project: str
    environment: str
    registry: str
    repository: str
    current: Arrival | None
    previous: Arrival | None
    held: HoldOut | None
    waiting: int
    lead_time: LeadTimeOut | None = None


class EnvironmentMatrix(BaseModel):
    items: list[EnvironmentOut]


class RejectionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    digest: str
    reason: str
    actor: str
    created_at: dt.datetime


class AttestationsOut(BaseModel):
    """The digest's ``.att`` tag in the repository of the build that made it, as checked now."""

    reference: str
    present: bool
    layers: int = 0
    verified: bool | None = None  # None: not checked (no signing key, or the key could not be read)
    verified_layers: int = 0
    detail: str = ""


class ImageOut(BaseModel):
    digest: str
    builds: list[BuildOut]
    promotions: list[PromotionOut]
    rejected: RejectionOut | None
    running_in: list[str]
    provenance: dict[str, Any] | None = Field(
        default=None, description="in-toto statement (SLSA provenance v1) of the newest build that made the digest")
    attestations: AttestationsOut | None = Field(
        default=None, description="only with ?attestations=true: the .att tag, verified with the signing key")


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "ci-bot", "role": "builder"}, {"name": "release-team", "role": "promoter", "environments": ["prod"]}]})

    name: str = Field(min_length=1, max_length=100, pattern=r"^[\w.@+-]+( [\w.@+-]+)*$")
    role: str = Field(description="viewer, builder, promoter or admin")
    environments: list[str] = Field(default_factory=list, description="limit a promoter to these environments")


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: str
    environments: list[str] | None
    prefix: str
    created_by: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class NewToken(TokenOut):
    token: str = Field(description="the token itself: shown once, stored only as a hash")
