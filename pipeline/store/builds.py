"""Queries on builds and their logs. Functions take a session and never commit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from pipeline.errors import Conflict, NotFound
from pipeline.store import jobs, wakeups
from pipeline.store.jobs import Job
from pipeline.store.pages import Before, newest_first
from pipeline.store.tables import Build, BuildLog, rowcount, utcnow

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "BuildFilter",
    "append_logs",
    "cancel_build",
    "create_build",
    "get_build",
    "last_succeeded",
    "list_builds",
    "newest_with_digest",
    "queue_build",
    "read_logs",
    "record_progress",
    "record_succeeded",
    "ref_was_built",
    "supersede_older",
]


def create_build(
    session: Session,
    *,
    project: str,
    commit: str,
    ref: str,
    branch: str | None,
    trigger: str,
    actor: str | None = None,
    delivery_id: int | None = None,
    before_commit: str | None = None,
    check_paths: bool = False,
) -> Build:
    """Queue a build and return its row (``queue_build`` when only the id is needed); the
    actor defaults to the trigger (``poll``)."""
    build_id = queue_build(
        session,
        project=project,
        commit=commit,
        ref=ref,
        branch=branch,
        trigger=trigger,
        actor=actor or trigger,
        delivery_id=delivery_id,
        before_commit=before_commit,
        check_paths=check_paths,
    )
    return get_build(session, build_id)


_T = cast(Table, Build.__table__)  # declarative types it as any FromClause; a mapped class's is a Table
# The webhook hot path: Core statements of constant shape, compiled once, values bound per call.
_QUEUE = insert(_T).returning(_T.c.id)
_QUEUE_DEFAULTS = {
    "status": "queued",
    "attempts": 0,
    "build_args": {},
    "tags": [],
    "cache_from": [],
    "layers": [],
    "advice": [],
    "check_paths": False,
    "delivery_id": None,
    "before_commit": None,
    "epoch": 0,
}
_SUPERSEDE = {
    running: update(_T)
    .where(
        _T.c.project == bindparam("p_project"),
        _T.c.ref == bindparam("p_ref"),
        _T.c.id < bindparam("p_id"),
        _T.c.status.in_(["queued", "running"] if running else ["queued"]),
    )
    .values(status="superseded", error=bindparam("p_error"), finished_at=bindparam("p_now"), lease_expires_at=None)
    .returning(_T.c.id)
    for running in (False, True)
}


def queue_build(session: Session, **values: object) -> int:
    """Insert a queued build without the ORM's unit of work."""
    row = _QUEUE_DEFAULTS | values | {"created_at": utcnow()}
    build_id: int = session.connection().execute(_QUEUE, row).scalar_one()
    wakeups.announce(session, "builds")
    return build_id


def supersede_older(session: Session, project: str, ref: str, build_id: int, *, running: bool) -> list[int]:
    """Mark older builds of the same project and ref superseded by build ``build_id``.

    Queued ones never start; with ``running`` a running one loses its lease too, and its worker
    stops the build at the next heartbeat.
    """
    params = {
        "p_project": project,
        "p_ref": ref,
        "p_id": build_id,
        "p_now": utcnow(),
        "p_error": f"superseded by build {build_id}",
    }
    return list(session.connection().execute(_SUPERSEDE[running], params).scalars())


def record_succeeded(
    session: Session,
    job: Job,
    *,
    digest: str,
    image: str,
    tags: list[str],
    image_size: int,
    layers: list[dict[str, Any]],
    steps_total: int,
    steps_cached: int,
    cache_from: list[str],
    provenance: dict[str, Any] | None,
    reused_from: int | None = None,
) -> None:
    """The one place a build's digest is written: the image it pushed, by digest, and how it
    was made. Only while ``job`` still holds the build (``LeaseLost`` otherwise)."""
    jobs.finish(
        session,
        job,
        status="succeeded",
        digest=digest,
        image=image,
        tags=tags,
        image_size=image_size,
        layers=layers,
        steps_total=steps_total,
        steps_cached=steps_cached,
        cache_from=cache_from,
        provenance=provenance,
        reused_from=reused_from,
        error=None,
    )


def newest_with_digest(session: Session, project: str, digest: str) -> Build | None:
    """The newest succeeded build of ``project`` that pushed ``digest``: who a tag belongs to."""
    stmt = (
        select(Build)
        .where(Build.digest == digest, Build.project == project, Build.status == "succeeded")
        .order_by(Build.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def same_image(session: Session, project: str, commit: str, inputs_sha256: str, other_than: int) -> Build | None:
    """The newest succeeded build of this commit with the same inputs (it made the same image)."""
    stmt = (
        select(Build)
        .where(
            Build.commit == commit,
            Build.project == project,
            Build.inputs_sha256 == inputs_sha256,
            Build.status == "succeeded",
            Build.digest.is_not(None),
            Build.id != other_than,
        )
        .order_by(Build.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def ref_was_built(session: Session, project: str, ref: str, commit: str) -> bool:
    """Any build of this commit for this ref, whatever its outcome: a poller must not repeat it."""
    stmt = select(Build.id).where(Build.project == project, Build.ref == ref, Build.commit == commit).limit(1)
    return session.scalar(stmt) is not None


def last_succeeded(session: Session, project: str, refs: list[str], before_id: int) -> Build | None:
    """The newest successful build of ``project`` for the first of ``refs`` that has one."""
    for ref in refs:
        stmt = (
            select(Build)
            .where(Build.project == project, Build.ref == ref, Build.status == "succeeded", Build.id < before_id)
            .order_by(Build.id.desc())
            .limit(1)
        )
        if found := session.scalars(stmt).first():
            return found
    return None


ACTIVE = ("queued", "running")
TERMINAL = ("succeeded", "failed", "cancelled", "superseded", "skipped")


def cancel_build(session: Session, build_id: int) -> Build:
    """Cancel a queued or running build; a running one's worker stops it at its next heartbeat."""
    stmt = (
        update(Build)
        .where(Build.id == build_id, Build.status.in_(ACTIVE))
        .values(status="cancelled", error="cancelled through the API", finished_at=utcnow(), lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    if rowcount(session.execute(stmt)) == 0:
        build = get_build(session, build_id)
        raise Conflict(f"build {build_id} is already {build.status}; only queued or running builds can be cancelled")
    session.expire_all()
    return get_build(session, build_id)


def get_build(session: Session, build_id: int) -> Build:
    build = session.get(Build, build_id)
    if build is None:
        raise NotFound(f"no build with id {build_id}")
    return build


@dataclass(frozen=True)
class BuildFilter:
    project: str | None = None
    branch: str | None = None
    status: str | None = None
    commit: str | None = None
    digest: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def list_builds(session: Session, where: BuildFilter, *, limit: int, before: Before | None = None) -> list[Build]:
    """Newest first, keyset-paginated (``pages``) so pages stay stable while builds are added."""
    stmt = select(Build)
    if where.project:
        stmt = stmt.where(Build.project == where.project)
    if where.branch:
        stmt = stmt.where(Build.branch == where.branch)
    if where.status:
        stmt = stmt.where(Build.status == where.status)
    if where.commit:
        stmt = stmt.where(*_commit_prefix(where.commit.lower()))
    if where.digest:
        stmt = stmt.where(Build.digest == where.digest)
    return list(
        session.scalars(newest_first(stmt, Build, since=where.since, until=where.until, before=before, limit=limit))
    )


def _commit_prefix(prefix: str) -> tuple[ColumnElement[bool], ...]:
    """A hex prefix as a range the ``commit`` index serves under any collation (a LIKE uses a
    b-tree only under the C collation), plus the LIKE that makes it exact."""
    conditions: list[ColumnElement[bool]] = [Build.commit >= prefix, Build.commit.startswith(prefix, autoescape=True)]
    digits = prefix.rstrip("f")
    if digits:  # the first string past the prefix: its last non-f digit plus one, f's dropped
        conditions.append(Build.commit < digits[:-1] + "0123456789abcdef"["0123456789abcdef".index(digits[-1]) + 1])
    return tuple(conditions)


def record_progress(session: Session, build_id: int, **values: object) -> None:
    """Facts learned while the build runs (engine, mode, args), visible before it ends."""
    session.execute(update(Build).where(Build.id == build_id).values(**values))


def append_logs(session: Session, build_id: int, lines: Iterable[str]) -> None:
    start = session.execute(
        select(func.coalesce(func.max(BuildLog.seq), 0)).where(BuildLog.build_id == build_id)
    ).scalar_one()
    session.add_all(
        BuildLog(build_id=build_id, seq=start + offset, line=line) for offset, line in enumerate(lines, start=1)
    )


def read_logs(session: Session, build_id: int, *, after_seq: int = 0, limit: int = 10_000) -> list[BuildLog]:
    get_build(session, build_id)
    stmt = (
        select(BuildLog)
        .where(BuildLog.build_id == build_id, BuildLog.seq > after_seq)
        .order_by(BuildLog.seq)
        .limit(limit)
    )
    return list(session.scalars(stmt))
