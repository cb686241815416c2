"""Webhook deliveries: the one write path that records a delivery and queues its builds.

Intake decides (who sent it, which project, which pushes build, what to answer); this module
records that decision, a ``DeliveryRecord``, through ``record`` (a session) or
``record_async`` (the webhook route's async pool on PostgreSQL). On PostgreSQL both run the
same single statement, ``statement(record)``: data-modifying CTEs that insert the delivery,
log a duplicate, coalesce with a queued or running build of the same commit and ref, queue
the other pushes and supersede older builds of their refs, all in one round trip. SQLite, which
has no data-modifying CTEs, runs the same steps as separate statements in the session's
transaction.

A delivery is identified by its ``dedupe_key`` (the host's delivery id and the hook it came
through): a unique index makes the second copy a conflict, logged as ``duplicate``, with no
window in which two copies both get in. A delivery without an id is keyed by its body's hash,
and only within the dedupe window: ``NOT EXISTS`` over the window plus a per-window key for
two copies arriving at once. Refused deliveries have no key and are logged every time.

Queued builds another delivery is superseding right now are skipped (``SKIP LOCKED``) instead
of waited for: that delivery supersedes them anyway. Running builds are waited for.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, exists, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from pipeline.store import builds, wakeups
from pipeline.store.tables import Build, Delivery

__all__ = ["DeliveryRecord", "QueuedPush", "Recorded", "has_any", "pyformat", "record", "record_async", "statement"]

DUPLICATE_REASON = "this delivery was received before"


@dataclass(frozen=True)
class QueuedPush:
    """One ref update that passed the filters: a build unless one of its commit is under way."""

    ref: str
    branch: str | None
    commit: str
    before: str
    check_paths: bool = False
    tag_object: str | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    """Everything recorded about one delivery, decided by intake before anything is written."""

    provider: str
    delivery_id: str
    event: str
    outcome: str  # queued (when pushes build), ignored, pong, or a refusal such as bad_signature
    status_code: int
    now: dt.datetime
    hook_id: str = ""
    repository: str | None = None
    project: str | None = None
    ref: str | None = None
    before: str | None = None
    after: str | None = None
    body_sha256: str | None = None
    dedupe_key: str | None = None  # None: never a duplicate (refusals, redeliveries)
    window_start: dt.datetime | None = None  # set: keyed by body hash, a duplicate within the window
    reason: str = ""
    size: int = 0
    remote_addr: str | None = None
    body: bytes | None = None
    headers: dict[str, str] | None = None
    redelivery_of: int | None = None
    pushes: Sequence[QueuedPush] = ()
    trigger: str = "webhook"
    actor: str = ""
    supersede_running: bool = False


@dataclass(frozen=True)
class Recorded:
    delivery_id: int  # the row logged for this delivery (the duplicate's own row for a duplicate)
    duplicate: bool = False
    build_ids: list[int] = field(default_factory=list)
    coalesced: list[int] = field(default_factory=list)  # builds of the same commit already under way
    superseded: list[int] = field(default_factory=list)


_DELIVERY_COLUMNS = (
    "provider, delivery_id, hook_id, event, repository, project, ref, before, after, body_sha256, "
    "dedupe_key, outcome, reason, status_code, size, remote_addr, body, headers, redelivery_of, received_at"
)
_BIND = re.compile(r"(?<![:\w]):(\w+)")


def pyformat(sql: str) -> str:
    """``:name`` binds as psycopg's ``%(name)s`` (the statements hold no other colon or percent)."""
    assert "%" not in sql
    return _BIND.sub(r"%(\1)s", sql)


def _coalesced_reason(ids_sql: str) -> str:
    return f"'build ' || ({ids_sql}) || ' of the same commit is already queued or running'"


@functools.cache
def _statement_text(pushes: int, by_body: bool, running: bool) -> str:
    """The PostgreSQL statement for a delivery of this shape (cached: a handful of shapes)."""
    ctes: list[str] = []
    for i in range(pushes):
        ctes.append(
            f"c{i} AS (SELECT id FROM builds WHERE project = :project AND ref = :ref_{i} AND commit = :commit_{i}"
            " AND status IN ('queued', 'running') ORDER BY id DESC LIMIT 1)"
        )
    union = " UNION ALL ".join(f"SELECT id FROM c{i}" for i in range(pushes))
    if pushes:
        all_coalesced = f"(SELECT count(*) FROM ({union}) AS x) = {pushes}"
        ids = f"SELECT string_agg(id::text, ', ') FROM ({union}) AS x"
        outcome = f"CASE WHEN {all_coalesced} THEN 'coalesced' ELSE :outcome END"
        reason = f"CASE WHEN {all_coalesced} THEN {_coalesced_reason(ids)} ELSE :reason END"
    else:
        outcome, reason = ":outcome", ":reason"
    window = (
        " WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries AS w WHERE w.project = :project"
        " AND w.body_sha256 = :body_sha256 AND w.dedupe_key IS NOT NULL AND w.received_at >= :window_start)"
        if by_body
        else ""
    )
    ctes.append(
        f"d AS (INSERT INTO webhook_deliveries ({_DELIVERY_COLUMNS}) SELECT :provider, :delivery_id, :hook_id, "
        ":event, :repository, :project, :ref, :before, :after, :body_sha256, :dedupe_key, "
        f"{outcome}, {reason}, :status_code, :size, :remote_addr, CAST(:body AS BYTEA), CAST(:headers AS JSON), "
        "CAST(:redelivery_of AS INTEGER), "
        f":now{window} ON CONFLICT DO NOTHING RETURNING id)"
    )
    ctes.append(
        f"dup AS (INSERT INTO webhook_deliveries ({_DELIVERY_COLUMNS}) SELECT :provider, :delivery_id, :hook_id, "
        ":event, :repository, :project, :ref, :before, :after, :body_sha256, NULL, 'duplicate', "
        f"'{DUPLICATE_REASON}', 200, :size, :remote_addr, NULL, NULL, NULL, :now "
        "WHERE NOT EXISTS (SELECT 1 FROM d) RETURNING id)"
    )
    statuses = "'queued', 'running'" if running else "'queued'"
    for i in range(pushes):
        ctes.append(
            f"b{i} AS (INSERT INTO builds (project, commit, branch, ref, before_commit, check_paths, trigger, actor, "
            "delivery_id, status, build_args, tags, attempts, epoch, created_at, cache_from, layers, advice, "
            f"tag_object) SELECT :project, :commit_{i}, :branch_{i}, :ref_{i}, :before_{i}, :check_paths_{i}, "
            f":trigger, :actor, d.id, 'queued', '{{}}', '[]', 0, 0, :now, '[]', '[]', '[]', :tag_object_{i} "
            f"FROM d WHERE NOT EXISTS (SELECT 1 FROM c{i}) RETURNING id)"
        )
        ctes.append(
            f"s{i} AS (UPDATE builds SET status = 'superseded', error = 'superseded by build ' || b{i}.id, "
            f"finished_at = :now, lease_expires_at = NULL FROM b{i} WHERE builds.id IN ("
            f"SELECT older.id FROM builds AS older WHERE older.project = :project AND older.ref = :ref_{i} "
            f"AND older.id < (SELECT id FROM b{i}) AND older.status IN ({statuses}) "
            f"FOR UPDATE OF older {'' if running else 'SKIP LOCKED'}) RETURNING builds.id)"
        )

    def array(prefix: str) -> str:
        if not pushes:
            return "'{}'::int[]"
        return "ARRAY[" + ", ".join(f"(SELECT id FROM {prefix}{i})" for i in range(pushes)) + "]::int[]"

    superseded = (
        "(SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM ("
        + " UNION ALL ".join(f"SELECT id FROM s{i}" for i in range(pushes))
        + ") AS x)"
        if pushes
        else "'{}'::int[]"
    )
    sql = (
        "WITH "
        + ",\n".join(ctes)
        + f"\nSELECT (SELECT id FROM d) AS delivery, (SELECT id FROM dup) AS duplicate, {array('b')} AS builds, "
        + f"{array('c')} AS coalesced, {superseded} AS superseded"
    )
    # one type per parameter: PostgreSQL deduces text in a select list, varchar in a comparison
    return _COMPARED.sub(r"CAST(:\1 AS VARCHAR)", sql)


_COMPARED = re.compile(r"(?<![:\w]):(project|body_sha256|ref_\d+|commit_\d+)\b")


def _values(rec: DeliveryRecord) -> dict[str, Any]:
    values: dict[str, Any] = {
        name: getattr(rec, name)
        for name in (
            "provider",
            "delivery_id",
            "hook_id",
            "event",
            "repository",
            "project",
            "ref",
            "before",
            "after",
            "body_sha256",
            "dedupe_key",
            "outcome",
            "reason",
            "status_code",
            "size",
            "remote_addr",
            "body",
            "redelivery_of",
            "now",
            "trigger",
            "actor",
        )
    }
    values["delivery_id"] = rec.delivery_id[:100]
    values["hook_id"] = rec.hook_id[:100]
    values["event"] = rec.event[:50]
    values["repository"] = rec.repository[:500] if rec.repository else None
    values["headers"] = json.dumps(rec.headers) if rec.headers is not None else None
    if rec.window_start is not None:
        values["window_start"] = rec.window_start
    for i, push in enumerate(rec.pushes):
        values.update(
            {
                f"ref_{i}": push.ref,
                f"branch_{i}": push.branch,
                f"commit_{i}": push.commit,
                f"before_{i}": push.before,
                f"check_paths_{i}": push.check_paths,
                f"tag_object_{i}": push.tag_object,
            }
        )
    return values


def statement(rec: DeliveryRecord) -> tuple[str, dict[str, Any]]:
    """The one PostgreSQL statement that records ``rec`` (``:name`` binds) and its values."""
    sql = _statement_text(len(rec.pushes), rec.window_start is not None, rec.supersede_running)
    return sql, _values(rec)


def _recorded(row: Sequence[Any]) -> Recorded:
    delivery, duplicate, built, coalesced, superseded = row
    return Recorded(
        delivery if delivery is not None else duplicate,
        delivery is None,
        [b for b in built if b is not None] if delivery is not None else [],
        [c for c in coalesced if c is not None] if delivery is not None else [],
        list(superseded),
    )


_TEXT: dict[str, Any] = {}


def record(session: Session, rec: DeliveryRecord) -> Recorded:
    """Record ``rec`` in the session's transaction (or, when none is open on PostgreSQL, as one
    autocommit statement: a single statement is atomic by itself, and saves BEGIN and COMMIT)."""
    if session.get_bind().dialect.name != "postgresql":
        return _record_stepwise(session, rec)
    if not session.in_transaction():
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    sql, values = statement(rec)
    compiled = _TEXT.get(sql)
    if compiled is None:
        compiled = _TEXT[sql] = text(sql)
    recorded = _recorded(tuple(session.connection().execute(compiled, values).one()))
    if recorded.build_ids:
        wakeups.announce(session, "builds")
    return recorded


async def record_async(execute: Callable[[str, dict[str, Any]], Awaitable[Any]], rec: DeliveryRecord) -> Recorded:
    """Record ``rec`` with ``execute(sql, values) -> row`` (psycopg binds): the webhook route's
    pool on PostgreSQL, the same statement ``record`` runs on a session."""
    sql, values = statement(rec)
    return _recorded(tuple(await execute(_pyformat_cached(sql), values)))


@functools.cache
def _pyformat_cached(sql: str) -> str:
    return pyformat(sql)


_TABLE = cast(Table, Delivery.__table__)
_INSERT = sqlite.insert(_TABLE).on_conflict_do_nothing().returning(_TABLE.c.id)


def _record_stepwise(session: Session, rec: DeliveryRecord) -> Recorded:
    """SQLite: the statement's steps one by one, in the caller's transaction."""
    values = _values(rec)
    coalesced = [_under_way(session, rec.project, push) for push in rec.pushes]
    row = {c.strip(): values.get(c.strip()) for c in _DELIVERY_COLUMNS.split(",")}
    row["received_at"] = rec.now
    row["headers"] = rec.headers
    if rec.pushes and all(c is not None for c in coalesced):
        row["outcome"] = "coalesced"
        row["reason"] = f"build {', '.join(str(c) for c in coalesced)} of the same commit is already queued or running"
    seen = rec.window_start is not None and session.scalar(
        select(
            exists().where(
                Delivery.project == rec.project,
                Delivery.body_sha256 == rec.body_sha256,
                Delivery.dedupe_key.is_not(None),
                Delivery.received_at >= rec.window_start,
            )
        )
    )
    delivery_id = None if seen else session.connection().execute(_INSERT, row).scalar_one_or_none()
    if delivery_id is None:
        dup = row | {"dedupe_key": None, "outcome": "duplicate", "reason": DUPLICATE_REASON, "status_code": 200}
        dup |= {"body": None, "headers": None, "redelivery_of": None}
        return Recorded(session.connection().execute(_INSERT, dup).scalar_one(), True)
    queued: list[int] = []
    superseded: list[int] = []
    for push, under_way in zip(rec.pushes, coalesced, strict=True):
        if under_way is not None:
            continue
        build_id = builds.queue_build(
            session,
            project=rec.project,
            commit=push.commit,
            ref=push.ref,
            branch=push.branch,
            trigger=rec.trigger,
            actor=rec.actor,
            delivery_id=delivery_id,
            before_commit=push.before,
            check_paths=push.check_paths,
            tag_object=push.tag_object,
        )
        queued.append(build_id)
        superseded += builds.supersede_older(
            session, str(rec.project), push.ref, build_id, running=rec.supersede_running
        )
    return Recorded(delivery_id, False, queued, [c for c in coalesced if c is not None], superseded)


def _under_way(session: Session, project: str | None, push: QueuedPush) -> int | None:
    stmt = (
        select(Build.id)
        .where(
            Build.project == project,
            Build.ref == push.ref,
            Build.commit == push.commit,
            Build.status.in_(("queued", "running")),
        )
        .order_by(Build.id.desc())
        .limit(1)
    )
    return session.scalar(stmt)


def has_any(session: Session, provider: str, hook_id: str) -> bool:
    stmt = select(Delivery.id).where(Delivery.provider == provider, Delivery.hook_id == hook_id).limit(1)
    return session.scalar(stmt) is not None
