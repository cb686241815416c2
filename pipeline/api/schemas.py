"""Response and request bodies of the REST API (kept apart from the ORM tables)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict, JsonValue

from pipeline.api import _examples as ex
from pipeline.api import _examples_verification as exv
from pipeline.types import COMMIT_PATTERN

__all__ = [
    "Arrival",
    "AttestationsOut",
    "BuildOut",
    "BuildPage",
    "BuildRequest",
    "ConfigOut",
    "ConfigReloadOut",
    "EnvironmentMatrix",
    "EnvironmentOut",
    "HoldOut",
    "ImageOut",
    "LeadTimeOut",
    "LogLine",
    "LogPage",
    "NewToken",
    "PromotionOut",
    "PromotionPage",
    "PromotionRequest",
    "Readiness",
    "ReasonBody",
    "RejectionOut",
    "ReloadRecord",
    "TokenOut",
    "TokenRequest",
    "VerificationOut",
    "WebhookAnswer",
]

BUILD_STATUSES = "queued, running, succeeded, failed, cancelled, superseded or skipped"
PROMOTION_STATUSES = "pending, running, awaiting_merge, succeeded, failed or rejected"


def _examples(*values: JsonValue) -> JsonDict:
    """``json_schema_extra`` for a model: its examples in the OpenAPI document."""
    return {"examples": list(values)}


class BuildOut(BaseModel):
    """One build: what was asked for, where it ran, and the digest it pushed."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra=_examples(ex.BUILD, ex.QUEUED_BUILD))

    id: int
    project: str
    commit: str = Field(description="the full 40-hex commit built")
    branch: str | None
    ref: str = Field(description="the full ref the commit was resolved from, such as refs/heads/main")
    trigger: str = Field(description="webhook, poll, api (asked through the API or CLI) or rebuild")
    actor: str = Field(
        description="who asked: the token's name, `github delivery <id>`, `poll`, or `rebuild of <id> by <name>`"
    )
    status: str = Field(description=BUILD_STATUSES)
    build_args: dict[str, Any]
    image: str | None = Field(description="the pushed image by digest: registry/repository@sha256:...")
    tags: list[str]
    digest: str | None = Field(description="sha256 digest of the pushed manifest, once pushed")
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
        default=None, description="in-toto statement (SLSA provenance v1) of the digest this build made"
    )
    reused_from: int | None = Field(
        default=None, description="the build of the same commit and inputs whose image this one re-tagged"
    )
    tag_object: str | None = Field(
        default=None, description="an annotated tag's object; `commit` is the commit it points at"
    )
    image_deleted_at: dt.datetime | None = Field(
        default=None, description="when the registry cleanup deleted the image (the build's history stays)"
    )
    timings: dict[str, float] | None = Field(
        default=None,
        description="seconds of the last attempt: `queue` (from the request to its start), then each step "
        "as it ended (`resolve`, `reuse`, `checkout`, `build`, `push`, `record`, `insight`); a failed build has the "
        "steps it got through",
        examples=[{"queue": 1.2, "resolve": 0.01, "checkout": 0.4, "build": 41.7, "push": 2.3, "record": 0.2}],
    )


class _Request(BaseModel):
    """A request body: its text holds no NUL character (PostgreSQL cannot store one; SQLite
    would, so the same request would mean different things on the two databases)."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            raise ValueError("must not contain NUL (\\u0000) characters")
        return value


class BuildRequest(_Request):
    """Build a branch or tag as it is now, or an exact commit."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_examples(*ex.BUILD_REQUESTS))

    project: str
    ref: str | None = Field(default=None, max_length=255)
    commit: str | None = Field(default=None, pattern=f"^{COMMIT_PATTERN}$")


class BuildPage(BaseModel):
    """A page of builds, newest first."""

    model_config = ConfigDict(json_schema_extra=_examples(ex.BUILD_PAGE))

    items: list[BuildOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last one")


class LogLine(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra=_examples(*ex.LOG_LINES))

    seq: int
    line: str
    created_at: dt.datetime


class LogPage(BaseModel):
    """Log lines after ``after``, with the build's status to know whether more will come."""

    model_config = ConfigDict(json_schema_extra=_examples(ex.LOG_PAGE))

    build_id: int
    status: str = Field(description=BUILD_STATUSES)
    lines: list[LogLine]
    next_seq: int = Field(description="pass as ?after= to read only the lines written since")


class WebhookAnswer(BaseModel):
    """What became of a delivery."""

    model_config = ConfigDict(json_schema_extra=_examples(*ex.WEBHOOK_ANSWERS))

    outcome: str = Field(description="queued (202), coalesced, ignored, duplicate or pong (200)")
    reason: str
    project: str | None
    build_ids: list[int]


class PromotionRequest(_Request):
    """Promote the digest a build made: name the digest or the build."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_examples(*ex.PROMOTION_REQUESTS))

    project: str = Field(max_length=63)
    environment: str = Field(max_length=63)
    digest: str | None = Field(default=None, max_length=80)
    build_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    reason: str = Field(default="", max_length=2000)


class VerificationOut(BaseModel):
    """The check of what the environment serves after the promotion moved its tag (verify_after)."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra=_examples(exv.VERIFICATION))

    status: str = Field(
        description="pending or running (still asking), verified, verification_failed, superseded (a newer "
        "promotion arrived first) or failed (the check itself could not run)"
    )
    url: str
    expect_status: int
    expect_body: str | None = Field(description="what the body must contain, the template filled in")
    checks: int = Field(description="how many times the environment was asked")
    last_answer: dict[str, Any] | None = Field(description="url, status, the start of the body, or the error")
    error: str | None = Field(description="why it failed or was superseded (with the last answer)")
    auto_rollback: bool
    rollback_id: int | None = Field(description="the rollback promotion a failed verification queued")
    deadline_at: dt.datetime
    created_at: dt.datetime
    finished_at: dt.datetime | None


class PromotionOut(BaseModel):
    """One promotion of a digest into an environment, with the steps it ran."""

    model_config = ConfigDict(
        from_attributes=True, json_schema_extra=_examples(ex.PROMOTION, ex.ROLLBACK, exv.PROMOTION_VERIFIED)
    )

    id: int
    project: str
    environment: str
    digest: str
    build_id: int | None
    status: str = Field(description=PROMOTION_STATUSES)
    trigger: str = Field(description="manual, auto or rollback")
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
    steps: list[dict[str, Any]] = Field(
        description="each step with kind, status, message, started_at, finished_at; a smoke-test step also "
        "keeps engine, image, network, probe (the last answer), seconds and log (the container's last lines)"
    )
    verification: VerificationOut | None = Field(
        default=None, description="the check after the tag moved, where the environment has verify_after"
    )
    error: str | None
    attempts: int
    worker: str | None = None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class PromotionPage(BaseModel):
    """A page of promotions, newest first."""

    model_config = ConfigDict(json_schema_extra=_examples(ex.PROMOTION_PAGE))

    items: list[PromotionOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last one")


class ReasonBody(_Request):
    """Why: recorded with the rollback or rejection and shown to whoever looks."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_examples(*ex.REASONS))

    reason: str = Field(default="", max_length=2000)


class HoldOut(BaseModel):
    """A hold on an environment: no auto-promotion into it until released."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra=_examples(ex.HOLD, ex.RELEASED_HOLD))

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

    model_config = ConfigDict(json_schema_extra=_examples(ex.ARRIVAL, ex.PREVIOUS_ARRIVAL))

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

    model_config = ConfigDict(from_attributes=True, json_schema_extra=_examples(ex.LEAD_TIME))

    median_seconds: float
    p90_seconds: float
    samples: int
    window_days: int


class RejectionOut(BaseModel):
    """A digest blocked from every further promotion."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra=_examples(ex.REJECTION))

    digest: str
    reason: str
    actor: str
    created_at: dt.datetime


class EnvironmentOut(BaseModel):
    """What runs in one environment of a project, what ran before, and whether it is held."""

    model_config = ConfigDict(json_schema_extra=_examples(ex.PROD, ex.HELD_PROD))

    project: str
    environment: str
    registry: str
    repository: str
    current: Arrival | None
    previous: Arrival | None
    held: HoldOut | None
    waiting: int = Field(description="promotions into the environment not finished yet")
    lead_time: LeadTimeOut | None = None
    rejected: RejectionOut | None = Field(
        default=None,
        description="set when the digest running now was rejected after it arrived: it runs, but can never "
        "be promoted again (roll back)",
    )
    skipped: list[RejectionOut] = Field(
        default=[], description="rejected digests that ran before; a rollback passes over them to `previous`"
    )


class EnvironmentMatrix(BaseModel):
    """Every configured project and environment, in config order."""

    model_config = ConfigDict(json_schema_extra=_examples(ex.ENVIRONMENT_MATRIX))

    items: list[EnvironmentOut]


class AttestationsOut(BaseModel):
    """The digest's ``.att`` tag in the repository of the build that made it, as checked now."""

    model_config = ConfigDict(json_schema_extra=_examples(ex.ATTESTATIONS))

    reference: str
    present: bool
    layers: int = 0
    verified: bool | None = None  # None: not checked (no signing key, or the key could not be read)
    verified_layers: int = 0
    detail: str = ""


class ImageOut(BaseModel):
    """A digest's lineage: the builds that made it, its promotions, and where it runs now."""

    model_config = ConfigDict(json_schema_extra=_examples(ex.IMAGE_LINEAGE))

    digest: str
    builds: list[BuildOut]
    promotions: list[PromotionOut]
    rejected: RejectionOut | None
    running_in: list[str]
    provenance: dict[str, Any] | None = Field(
        default=None, description="in-toto statement (SLSA provenance v1) of the newest build that made the digest"
    )
    attestations: AttestationsOut | None = Field(
        default=None, description="only with ?attestations=true: the .att tag, verified with the signing key"
    )


class TokenRequest(_Request):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_examples(*ex.TOKEN_REQUESTS))

    name: str = Field(min_length=1, max_length=100, pattern=r"^[\w.@+-]+( [\w.@+-]+)*$")
    role: str = Field(description="viewer, builder, promoter or admin")
    environments: list[str] = Field(default_factory=list, description="limit a promoter to these environments")


class TokenOut(BaseModel):
    """An API token as stored: never its value, only the first characters to recognize it by."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra=_examples(*ex.TOKENS))

    id: int
    name: str
    role: str = Field(description="viewer, builder, promoter or admin")
    environments: list[str] | None = Field(description="the environments a limited promoter may promote to")
    prefix: str = Field(description="the token's first 12 characters")
    created_by: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class NewToken(TokenOut):
    """A token just created, with its value."""

    model_config = ConfigDict(json_schema_extra=_examples(ex.NEW_TOKEN))

    token: str = Field(description="the token itself: shown once, stored only as a hash")


class Readiness(BaseModel):
    """What ``/readyz`` answers (documentation only: the route writes the JSON itself)."""

    model_config = ConfigDict(json_schema_extra=_examples(*ex.READY, *ex.NOT_READY))

    status: str = Field(description="ok or unavailable")
    schema_: str | None = Field(default=None, alias="schema", description="the database's schema revision")
    engine: str | None = Field(default=None, description="the Docker engine that answered, where builds run")
    detail: str | None = Field(default=None, description="why not ready")


class ReloadRecord(BaseModel):
    """A config reload someone asked for."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra=_examples(ex.RELOAD_RECORD))

    id: int
    fingerprint: str
    actor: str
    summary: str
    created_at: dt.datetime


class ConfigOut(BaseModel):
    """The config the answering process runs."""

    model_config = ConfigDict(json_schema_extra=_examples(ex.CONFIG))

    source: str | None = Field(description="the config file; none for a config made in code")
    fingerprint: str = Field(description="names the config's content: equal in every process that took a reload")
    loaded_at: dt.datetime
    projects: dict[str, list[str]] = Field(description="each project's environments, in promotion order")
    last_reload: ReloadRecord | None


class ConfigReloadOut(BaseModel):
    """What a reload changed in the answering process; the others follow on their own."""

    model_config = ConfigDict(json_schema_extra=_examples(ex.CONFIG_RELOAD))

    reload_id: int
    source: str
    fingerprint: str
    previous: str
    changed: bool
    summary: str
    projects_added: list[str]
    projects_removed: list[str]
    projects_changed: list[str]
    sections: list[str]
    restart_required: list[str] = Field(description="changed settings a running process takes only at a restart")
    others_within_seconds: float = Field(description="how soon the other processes read their own file")
