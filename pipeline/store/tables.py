"""ORM tables: the database is the single source of truth and the work queue.

Kept apart from the API schemas. The schema is changed only by Alembic migrations; a test
checks that autogenerate finds nothing between these tables and ``migrations/``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SQLColumnExpression,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    false,
    text,
)
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "ARRIVED",
    "ARRIVED_SQL",
    "WAITING",
    "WAITING_SQL",
    "ApiToken",
    "Base",
    "Build",
    "BuildLog",
    "ConfigReload",
    "Delivery",
    "EnvironmentHold",
    "Notification",
    "Project",
    "Promotion",
    "RejectedDigest",
    "Verification",
    "literal_in",
    "rowcount",
    "utcnow",
]


WAITING = ("pending", "running", "awaiting_merge")  # promotions not yet finished
ARRIVED = ("succeeded",)  # a promotion whose digest reached its environment


def _status_in(statuses: tuple[str, ...]) -> str:
    """A partial index's predicate, as ``literal_in`` renders it in queries."""
    return f"status IN ({', '.join(repr(s) for s in statuses)})"


WAITING_SQL = _status_in(WAITING)
ARRIVED_SQL = _status_in(ARRIVED)


def literal_in(column: SQLColumnExpression[str], values: tuple[str, ...]) -> ColumnElement[bool]:
    """``column IN (…)`` with the values written into the SQL rather than bound: only then can
    PostgreSQL match a partial index's predicate, in a prepared statement's generic plan too."""
    return column.in_(bindparam(None, list(values), expanding=True, literal_execute=True))


def rowcount(result: Result[*tuple[Any, ...]]) -> int:
    """The rows an UPDATE or DELETE matched. ``Session.execute`` is typed as returning a plain
    ``Result``; for those statements it is a ``CursorResult``, which counts them."""
    return cast("CursorResult[*tuple[Any, ...]]", result).rowcount


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use timezone-aware UTC")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


_naming = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_naming)
    type_annotation_map: ClassVar[dict[object, TypeEngine[Any]]] = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class QueueRow:
    """The columns every queue table has (builds, promotions, verifications, notifications):
    what ``store.jobs`` claims, leases, fences and finishes by, declared once."""

    attempts: Mapped[int] = mapped_column(default=0)
    # the fencing token: grows with every claim, so a worker that stalled past its lease and
    # wakes up finds that the row is no longer its claim, even when it is running again
    epoch: Mapped[int] = mapped_column(default=0, server_default="0")
    not_before: Mapped[dt.datetime | None]
    worker: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]


class Project(Base):
    """A project as last seen in the config, so history outlives config edits."""

    __tablename__ = "projects"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    repo: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """Every webhook delivery and what became of it, so ops can see why a push did not build;
    the builds it queued point back at it (``Build.delivery_id``)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # who the delivery is: the host's delivery id with the hook it came through, or (no id
        # sent) the body's hash within the dedupe window; NULL for refusals and duplicates,
        # which are logged as often as they arrive
        Index(None, "dedupe_key", unique=True),
        Index(None, "received_at", "id"),  # the delivery log's listing and its pruning
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    delivery_id: Mapped[str] = mapped_column(String(100))
    hook_id: Mapped[str] = mapped_column(String(100), default="")
    event: Mapped[str] = mapped_column(String(50))
    repository: Mapped[str | None] = mapped_column(String(500))
    project: Mapped[str | None] = mapped_column(String(63))
    ref: Mapped[str | None] = mapped_column(String(255))
    before: Mapped[str | None] = mapped_column(String(64))
    after: Mapped[str | None] = mapped_column(String(64))
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    dedupe_key: Mapped[str | None] = mapped_column(String(400))
    status_code: Mapped[int] = mapped_column(default=0, server_default="0")
    size: Mapped[int] = mapped_column(default=0, server_default="0")
    remote_addr: Mapped[str | None] = mapped_column(String(100))
    # an accepted delivery's body and its non-secret headers (never a signature or token),
    # kept for ``intake.keep_bodies_days`` so it can be redelivered
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, Any] | None]
    redelivery_of: Mapped[int | None] = mapped_column(Integer)


class Build(QueueRow, Base):
    """A build request and, once worked, how its image was made: the queue row and the record."""

    __tablename__ = "builds"
    __table_args__ = (
        Index(None, "status", "id"),
        Index(None, "project", "id"),
        Index(None, "commit"),
        Index(None, "digest"),
        # branch first: with project first, the planner took it for the intake's superseding
        # (project, ref, id < n) and scanned a project's whole history on every delivery
        Index(None, "branch", "project", "id"),
        Index(None, "created_at", "id"),  # listings with a time range (store.pages)
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(ForeignKey("projects.name"))
    commit: Mapped[str] = mapped_column(String(40))
    branch: Mapped[str | None] = mapped_column(String(255))
    ref: Mapped[str] = mapped_column(String(255))
    before_commit: Mapped[str | None] = mapped_column(String(40))
    check_paths: Mapped[bool] = mapped_column(default=False, server_default=false())
    trigger: Mapped[str] = mapped_column(String(20))
    # who asked: a token's name, "github delivery <id>", "poll", "rebuild of 12 by alice"
    actor: Mapped[str] = mapped_column(String(255), default="", server_default="")
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_deliveries.id"))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    build_args: Mapped[dict[str, Any]] = mapped_column(default=dict)
    image: Mapped[str | None] = mapped_column(String(500))
    tags: Mapped[list[Any]] = mapped_column(default=list)
    digest: Mapped[str | None] = mapped_column(String(80))
    engine: Mapped[str | None] = mapped_column(String(255))
    builder_mode: Mapped[str | None] = mapped_column(String(30))
    error: Mapped[str | None] = mapped_column(Text)
    steps_total: Mapped[int | None]
    steps_cached: Mapped[int | None]
    cache_from: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    image_size: Mapped[int | None] = mapped_column(BigInteger)
    layers: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    insight: Mapped[dict[str, Any] | None]
    advice: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    provenance: Mapped[dict[str, Any] | None]  # in-toto statement, SLSA provenance v1, of the digest
    # the registry cleanup deleted the image (the row and its history stay)
    image_deleted_at: Mapped[dt.datetime | None]
    timings: Mapped[dict[str, Any] | None]  # seconds per step of the last attempt: checkout, build, push, …
    # the build whose image this one re-tagged instead of building (same commit and inputs)
    reused_from: Mapped[int | None] = mapped_column(Integer)
    inputs_sha256: Mapped[str | None] = mapped_column(String(64))  # dockerfile, context, target, args, platforms
    tag_object: Mapped[str | None] = mapped_column(String(40))  # an annotated tag's object; commit is what it peels to


class BuildLog(Base):
    """One line of build output; rows so a follower can ask for everything after ``seq``."""

    __tablename__ = "build_logs"
    __table_args__ = (UniqueConstraint("build_id", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("builds.id", ondelete="CASCADE"))
    seq: Mapped[int]
    line: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Promotion(QueueRow, Base):
    """A request to move one digest into one environment, and what became of it.

    Append-only history: a row is never deleted and, once finished, never changed.
    ``rollback_to_id`` makes rollbacks walk back through history rather than toggle: a normal
    promotion points at the one it replaced; a rollback inherits the pointer of the promotion
    it restored, so a second rollback goes one step further back.
    """

    __tablename__ = "promotions"
    __table_args__ = (
        Index(None, "project", "environment", "id"),
        Index(None, "status", "id"),
        Index(None, "digest"),
        Index(None, "created_at", "id"),  # listings with a time range (store.pages)
        Index(None, "project", "environment", "created_at", "id"),
        Index(None, "actor", "id"),
        # partial: what the matrix and the claim ask of one environment, without its whole history
        Index(
            "ix_promotions_waiting",
            "project",
            "environment",
            postgresql_where=text(WAITING_SQL),
            sqlite_where=text(WAITING_SQL),
        ),
        Index(
            "ix_promotions_arrivals",
            "project",
            "environment",
            "finished_at",
            postgresql_where=text(ARRIVED_SQL),
            sqlite_where=text(ARRIVED_SQL),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(ForeignKey("projects.name"))
    environment: Mapped[str] = mapped_column(String(63))
    digest: Mapped[str] = mapped_column(String(80))
    build_id: Mapped[int | None] = mapped_column(ForeignKey("builds.id"))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    trigger: Mapped[str] = mapped_column(String(20), default="manual", server_default="manual")
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text, default="")
    source_ref: Mapped[str | None] = mapped_column(String(500))
    target_ref: Mapped[str | None] = mapped_column(String(500))
    previous_digest: Mapped[str | None] = mapped_column(String(80))
    rollback_to_id: Mapped[int | None] = mapped_column(Integer)
    restores_id: Mapped[int | None] = mapped_column(Integer)
    copy_report: Mapped[dict[str, Any] | None]
    gitops_commit: Mapped[str | None] = mapped_column(String(64))
    gitops_pull_request: Mapped[str | None] = mapped_column(String(500))
    steps: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    error: Mapped[str | None] = mapped_column(Text)
    # its check after the tag moved (verify_after), loaded with it wherever a promotion is read
    verification: Mapped[Verification | None] = relationship(viewonly=True, lazy="selectin")


class Verification(QueueRow, Base):
    """The check of what an environment serves after a promotion moved its tag: a queue row of
    its own (claimed, released between checks, finished), so polling for ten minutes holds no
    worker; the promotion row stays as it finished (history is append-only)."""

    __tablename__ = "verifications"
    __table_args__ = (Index(None, "status", "id"), Index(None, "project", "environment", "id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    promotion_id: Mapped[int] = mapped_column(ForeignKey("promotions.id"), unique=True)
    project: Mapped[str] = mapped_column(ForeignKey("projects.name"))
    environment: Mapped[str] = mapped_column(String(63))
    # pending, running, verified, verification_failed, superseded, failed
    status: Mapped[str] = mapped_column(String(20), default="pending")
    url: Mapped[str] = mapped_column(String(2000))
    expect_status: Mapped[int] = mapped_column(default=200)
    expect_body: Mapped[str | None] = mapped_column(Text)
    interval_seconds: Mapped[float] = mapped_column(Float)
    deadline_at: Mapped[dt.datetime]
    auto_rollback: Mapped[bool] = mapped_column(default=False)
    checks: Mapped[int] = mapped_column(default=0)
    last_answer: Mapped[dict[str, Any] | None]
    rollback_id: Mapped[int | None] = mapped_column(Integer)  # the promotion an auto-rollback queued
    error: Mapped[str | None] = mapped_column(Text)


class EnvironmentHold(Base):
    """Auto-promotion paused for one environment (placed by a rollback, lifted by a release).

    Kept after release, with who released it and when, as part of the history.
    """

    __tablename__ = "environment_holds"
    __table_args__ = (Index(None, "project", "environment", "released_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(ForeignKey("projects.name"))
    environment: Mapped[str] = mapped_column(String(63))
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(255))
    promotion_id: Mapped[int | None] = mapped_column(ForeignKey("promotions.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    released_at: Mapped[dt.datetime | None]
    released_by: Mapped[str | None] = mapped_column(String(255))


class RejectedDigest(Base):
    """A digest that must never be promoted again, and why."""

    __tablename__ = "rejected_digests"
    digest: Mapped[str] = mapped_column(String(80), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """An API token: only its SHA-256 is kept, so a leaked database leaks no usable token."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    environments: Mapped[list[Any] | None]  # a promoter limited to these environments; None = all
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class ConfigReload(Base):
    """A config reload someone asked for: every process that sees a newer row reads its file again."""

    __tablename__ = "config_reloads"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(255))
    summary: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Notification(QueueRow, Base):
    """One commit status, deployment report or notification to deliver: the outbox.

    Written in the transaction of the change it reports, delivered later by a worker that
    claims it like any queue row (``store.jobs``); rows of one ``target`` and ``subject`` (a
    build's statuses on one host) are delivered one at a time, oldest first, so ``success``
    never overtakes ``pending``. ``payload`` holds what is said, never a token, secret or
    signature: those are added at delivery. ``dead`` is the dead letter, kept with its error.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index(None, "status", "id"),
        Index(None, "target", "subject", "id"),
        Index(None, "build_id"),
        Index(None, "promotion_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # status, deployment, webhook, slack
    target: Mapped[str] = mapped_column(String(100))  # "status:<project>" or a notification target's name
    subject: Mapped[str] = mapped_column(String(100))  # build:12, promotion:7, hold:3
    event: Mapped[str] = mapped_column(String(50))
    project: Mapped[str] = mapped_column(String(63))
    environment: Mapped[str | None] = mapped_column(String(63))
    build_id: Mapped[int | None] = mapped_column(Integer)
    promotion_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None]  # what the receiver answered that later rows need (a deployment id)
    response_code: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(20), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
