"""The webhook hot path on PostgreSQL: record a delivery, queue its build and supersede older
builds of the ref in one statement, one round trip (data-modifying CTEs).

SQLite, and deliveries with several ref updates, take the general path in ``deliveries`` and
``builds``; both paths write the same rows, and the intake tests run on both databases.

Queued builds another delivery is superseding right now are skipped (``SKIP LOCKED``) instead
of waited for: that delivery supersedes them anyway, and a burst of pushes to one branch no
longer queues up behind row locks. Running builds are waited for, so none is missed.

Each statement exists twice from one text: as a SQLAlchemy ``text()`` for sessions, and in
psycopg's ``%(name)s`` style for the asynchronous webhook route, which runs it on its own
connection pool without a session or a thread (see ``pipeline.intake._async``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["INSERT_IGNORED_PG", "RECORD_SINGLE_PUSH_PG", "Recorded", "record_single_push", "recorded_from_row"]


def _record_single_push(running: bool) -> str:
    return f"""
WITH d AS (
    INSERT INTO webhook_deliveries (provider, delivery_id, hook_id, event, repository, project, ref, before,
                                    after, body_sha256, outcome, reason, received_at)
    VALUES (:provider, :delivery_id, :hook_id, :event, :repository, :project, :ref, :before, :after,
            :body_sha256, 'queued', '', :now)
    ON CONFLICT DO NOTHING
    RETURNING id
), b AS (
    INSERT INTO builds (project, commit, branch, ref, before_commit, check_paths, trigger, actor, delivery_id,
                        status, build_args, tags, attempts, epoch, created_at, cache_from, layers, advice)
    SELECT :project, :after, :branch, :ref, :before, :check_paths, :trigger, :actor,
           d.id, 'queued', '{{}}', '[]', 0, 0, :now, '[]', '[]', '[]'
    FROM d
    RETURNING id
), s AS (
    UPDATE builds SET status = 'superseded', error = 'superseded by build ' || b.id, finished_at = :now,
                      lease_expires_at = NULL
    FROM b
    WHERE builds.id IN (
        SELECT older.id FROM builds AS older
        WHERE older.project = :project AND older.ref = :ref AND older.id < (SELECT id FROM b)
          AND older.status IN ({"'queued', 'running'" if running else "'queued'"})
        FOR UPDATE OF older {"" if running else "SKIP LOCKED"}
    )
    RETURNING builds.id
)
SELECT (SELECT id FROM d) AS delivery, (SELECT id FROM b) AS build,
       (SELECT coalesce(array_agg(id ORDER BY id), '{{}}') FROM s) AS superseded
"""


# A delivery that queues nothing (filtered out, deleted ref, an event that is not a push): the
# row `deliveries.insert_delivery` writes, in one autocommit statement.
_INSERT_IGNORED = """
INSERT INTO webhook_deliveries (provider, delivery_id, hook_id, event, repository, project, ref, before, after,
                                body_sha256, outcome, reason, received_at)
VALUES (:provider, :delivery_id, :hook_id, :event, :repository, :project, :ref, :before, :after,
        :body_sha256, 'ignored', :reason, :now)
ON CONFLICT DO NOTHING
RETURNING id
"""

_BIND = re.compile(r"(?<![:\w]):(\w+)")


def _pyformat(sql: str) -> str:
    """``:name`` binds as psycopg's ``%(name)s`` (the statements hold no other colon or percent)."""
    assert "%" not in sql
    return _BIND.sub(r"%(\1)s", sql)


_SQL = {running: text(_record_single_push(running)) for running in (False, True)}
RECORD_SINGLE_PUSH_PG = {running: _pyformat(_record_single_push(running)) for running in (False, True)}
INSERT_IGNORED_PG = _pyformat(_INSERT_IGNORED)


@dataclass(frozen=True)
class Recorded:
    delivery_id: int | None  # None: an equal delivery was recorded before, nothing was written
    build_id: int | None
    superseded: list[int]


def recorded_from_row(row: Any) -> Recorded:
    """A ``(delivery, build, superseded)`` row of the single-push statement."""
    delivery, build, superseded = row
    return Recorded(delivery, build, list(superseded))


def record_single_push(session: Session, *, now: dt.datetime, supersede_running: bool, **values: object) -> Recorded:
    """One delivery with one ref update that passed the filters, written in one round trip."""
    row = session.connection().execute(_SQL[supersede_running], {"now": now, **values}).one()
    return Recorded(row.delivery, row.build, list(row.superseded))
