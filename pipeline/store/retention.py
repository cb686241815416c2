"""What the retention duties read and write: the images a cleanup may consider, the digests
promotions keep, the mark a deleted image leaves on its build, and old build logs.

A deleted image's build row stays (``image_deleted_at``), so the history of what was built,
promoted and run is never lost with the bytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from pipeline.store.tables import WAITING, Build, BuildLog, Promotion, literal_in, utcnow

__all__ = [
    "RETENTION_MARK",
    "ImageRow",
    "deleted_image",
    "ever_promoted",
    "images_of_digest",
    "kept_by_promotions",
    "live_images",
    "logs_before",
    "mark_image_deleted",
    "replace_logs",
]

RETENTION_MARK = "[retention]"  # the first words of the line left where old logs were


@dataclass(frozen=True)
class ImageRow:
    """A succeeded build whose image is still in the registry, as the cleanup plan sees it."""

    build_id: int
    commit: str
    branch: str | None
    ref: str
    digest: str
    tags: tuple[str, ...]
    built_at: dt.datetime


def _row(build: Build) -> ImageRow:
    assert build.digest is not None
    return ImageRow(
        build.id,
        build.commit,
        build.branch,
        build.ref,
        build.digest,
        tuple(str(t) for t in build.tags or ()),
        build.finished_at or build.created_at,
    )


def live_images(session: Session, project: str) -> list[ImageRow]:
    """Every succeeded build of ``project`` whose image the cleanup has not deleted, oldest first."""
    stmt = (
        select(Build)
        .where(
            Build.project == project,
            Build.status == "succeeded",
            Build.digest.is_not(None),
            Build.image_deleted_at.is_(None),
        )
        .order_by(Build.id)
    )
    return [_row(b) for b in session.scalars(stmt)]


def kept_by_promotions(session: Session, project: str, keep: int, digest: str | None = None) -> dict[str, str]:
    """Digest -> why promotions keep it: a promotion of it not finished yet (being copied,
    signed, rolled back to), or one of the last ``keep`` arrivals in an environment (the
    newest is what runs there). ``digest`` narrows it to one (the check right before a delete)."""
    kept: dict[str, str] = {}
    waiting = select(Promotion.id, Promotion.environment, Promotion.digest, Promotion.status).where(
        Promotion.project == project, literal_in(Promotion.status, WAITING)
    )
    if digest is not None:
        waiting = waiting.where(Promotion.digest == digest)
    for pid, env, found, status in session.execute(waiting.order_by(Promotion.id)):
        kept.setdefault(found, f"promotion {pid} to {env} is {status}")
    rank = func.row_number().over(partition_by=Promotion.environment, order_by=Promotion.id.desc()).label("rank")
    arrivals = (
        select(Promotion.id, Promotion.environment, Promotion.digest, rank)
        .where(Promotion.project == project, Promotion.status == "succeeded")
        .subquery()
    )
    recent = select(arrivals).where(arrivals.c.rank <= keep)
    if digest is not None:
        recent = recent.where(arrivals.c.digest == digest)
    for pid, env, found, place in session.execute(recent.order_by(arrivals.c.rank, arrivals.c.id.desc())):
        why = f"runs in {env} (promotion {pid})" if place == 1 else f"ran in {env} (promotion {pid}, {place}. newest)"
        kept.setdefault(found, why)
    return kept


def ever_promoted(session: Session, project: str, environments: list[str]) -> dict[str, str]:
    """Digest -> the environment it arrived in, for every digest that ever arrived in one of
    ``environments`` (those whose repository is the build repository: never cleaned)."""
    if not environments:
        return {}
    stmt = (
        select(Promotion.digest, func.min(Promotion.environment))
        .where(Promotion.project == project, Promotion.status == "succeeded", Promotion.environment.in_(environments))
        .group_by(Promotion.digest)
    )
    return {digest: env for digest, env in session.execute(stmt)}


def images_of_digest(session: Session, project: str, digest: str, *, lock: bool = False) -> list[Build]:
    """The succeeded builds of ``project`` that made ``digest``; ``lock`` takes their rows for
    the transaction (PostgreSQL), so a promotion asked for meanwhile waits and then sees the mark."""
    stmt = select(Build).where(Build.project == project, Build.digest == digest, Build.status == "succeeded")
    if lock:  # and read them afresh: the session may hold them from before the lock was granted
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return list(session.scalars(stmt.order_by(Build.id)))


def deleted_image(session: Session, project: str, digest: str) -> Build | None:
    """A build of ``digest`` whose image the cleanup deleted, read under the rows' lock."""
    for build in images_of_digest(session, project, digest, lock=True):
        if build.image_deleted_at is not None:
            return build
    return None


def mark_image_deleted(session: Session, build_ids: Iterable[int], when: dt.datetime | None = None) -> None:
    ids = list(build_ids)
    if ids:
        session.execute(update(Build).where(Build.id.in_(ids)).values(image_deleted_at=when or utcnow()))


def logs_before(session: Session, cutoff: dt.datetime, limit: int = 500) -> list[int]:
    """Builds with log lines older than ``cutoff`` that retention has not replaced yet."""
    stmt = (
        select(BuildLog.build_id)
        .where(BuildLog.created_at < cutoff, BuildLog.line.not_like(f"{RETENTION_MARK}%"))
        .group_by(BuildLog.build_id)
        .order_by(BuildLog.build_id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def replace_logs(session: Session, build_id: int, mark: str) -> list[str]:
    """The build's log lines, removed and replaced by one line ``mark`` (written now)."""
    lines = list(session.scalars(select(BuildLog.line).where(BuildLog.build_id == build_id).order_by(BuildLog.seq)))
    session.execute(delete(BuildLog).where(BuildLog.build_id == build_id))
    session.add(BuildLog(build_id=build_id, seq=1, line=f"{RETENTION_MARK} {mark}"))
    return lines
