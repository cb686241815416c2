"""What the environments matrix reads, for any number of cells in a fixed number of statements.

A cell is one project's environment. Asked cell by cell the matrix cost six statements a
cell (22 for one project, 480 for twenty); here each kind of fact is one statement over all
cells, and each per-cell part of it is a short index probe (``LIMIT``), never a scan of the
cell's history. On PostgreSQL the probes are a LATERAL join over the cells (``unnest`` of two
arrays); SQLite, which has no LATERAL, gets a UNION ALL of them, built once per number of
cells with bound values. Rows are loaded without the large JSON columns the matrix never shows (steps,
insight, provenance: loaded lazily if asked for).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import CompoundSelect, Select, String, bindparam, func, select, true, union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, load_only

from pipeline.store.promotions import newest_succeeded
from pipeline.store.tables import ARRIVED, WAITING, Build, EnvironmentHold, Promotion, RejectedDigest, literal_in

__all__ = [
    "Cell",
    "arrival_delays",
    "builds_by_id",
    "current",
    "holds",
    "promotions_by_id",
    "rejections",
    "waiting",
]

Cell = tuple[str, str]  # (project, environment)

_PROMOTION_COLUMNS = load_only(
    Promotion.id,
    Promotion.project,
    Promotion.environment,
    Promotion.digest,
    Promotion.build_id,
    Promotion.status,
    Promotion.trigger,
    Promotion.actor,
    Promotion.rollback_to_id,
    Promotion.created_at,
    Promotion.finished_at,
)
_BUILD_COLUMNS = load_only(
    Build.id, Build.project, Build.commit, Build.branch, Build.ref, Build.status, Build.digest, Build.created_at
)


def _union(parts: list[Select[Any]]) -> Select[Any] | CompoundSelect[Any]:
    """One statement for the per-cell parts; each is wrapped so that its ORDER BY … LIMIT stays
    its own (SQLite allows neither inside a compound select)."""
    wrapped = [select(part.subquery()) for part in parts]
    return wrapped[0] if len(wrapped) == 1 else union_all(*wrapped)


def _cell_of(i: int) -> tuple[Any, Any]:
    return bindparam(f"project_{i}"), bindparam(f"environment_{i}")


def _bind(cells: Sequence[Cell], postgres: bool, **more: Any) -> dict[str, Any]:
    if postgres:
        return {"projects": [p for p, _ in cells], "environments": [e for _, e in cells]} | more
    values = {f"project_{i}": project for i, (project, _) in enumerate(cells)}
    return values | {f"environment_{i}": environment for i, (_, environment) in enumerate(cells)} | more


def _cells_table() -> Any:
    """PostgreSQL: the cells as ``unnest`` of two array parameters, so that one statement serves
    any number of cells and SQLAlchemy compiles it once (a VALUES list is compiled every time)."""
    return (
        func.unnest(bindparam("projects", type_=ARRAY(String)), bindparam("environments", type_=ARRAY(String)))
        .table_valued("project", "environment")
        .render_derived(name="cells")
    )


@functools.lru_cache(maxsize=64)
def _current_statement(n: int, postgres: bool) -> Select[Any]:
    """``n`` counts only on SQLite (a UNION ALL branch a cell)."""
    if postgres:
        table = _cells_table()
        newest = newest_succeeded(table.c.project, table.c.environment).lateral("newest")
        ids: Any = select(newest.c.id).select_from(table).join(newest, true())
    else:
        ids = _union([newest_succeeded(project, environment) for project, environment in map(_cell_of, range(n))])
    return select(Promotion).options(_PROMOTION_COLUMNS).where(Promotion.id.in_(ids))


def current(session: Session, cells: Sequence[Cell]) -> dict[Cell, Promotion]:
    """Each cell's newest succeeded promotion: what it runs.

    On PostgreSQL a LATERAL join over the cells: one short plan for any number of cells
    (planning the 80-branch UNION cost 15 ms of the matrix's 36); SQLite has no LATERAL.
    """
    if not cells:
        return {}
    postgres = session.get_bind().dialect.name == "postgresql"
    rows = session.scalars(_current_statement(0 if postgres else len(cells), postgres), _bind(cells, postgres))
    return {(row.project, row.environment): row for row in rows}


def builds_by_id(session: Session, ids: set[int]) -> dict[int, Build]:
    if not ids:
        return {}
    stmt = select(Build).options(_BUILD_COLUMNS).where(Build.id.in_(sorted(ids)))
    return {row.id: row for row in session.scalars(stmt)}


def promotions_by_id(session: Session, ids: set[int]) -> dict[int, Promotion]:
    if not ids:
        return {}
    stmt = select(Promotion).options(_PROMOTION_COLUMNS).where(Promotion.id.in_(sorted(ids)))
    return {row.id: row for row in session.scalars(stmt)}


def rejections(session: Session, digests: set[str]) -> dict[str, RejectedDigest]:
    """The rejections among ``digests`` (a rejected digest may still run where it arrived before)."""
    if not digests:
        return {}
    stmt = select(RejectedDigest).where(RejectedDigest.digest.in_(sorted(digests)))
    return {row.digest: row for row in session.scalars(stmt)}


def holds(session: Session, projects: Sequence[str]) -> dict[Cell, EnvironmentHold]:
    """The active hold of each held cell (the newest, as ``promotions.active_hold`` has it)."""
    stmt = (
        select(EnvironmentHold)
        .where(EnvironmentHold.project.in_(list(projects)), EnvironmentHold.released_at.is_(None))
        .order_by(EnvironmentHold.id)
    )
    return {(row.project, row.environment): row for row in session.scalars(stmt)}


def waiting(session: Session, projects: Sequence[str]) -> dict[Cell, int]:
    """Unfinished promotions per cell, from the partial index of unfinished ones."""
    stmt = (
        select(Promotion.project, Promotion.environment, func.count())
        .where(Promotion.project.in_(list(projects)), literal_in(Promotion.status, WAITING))
        .group_by(Promotion.project, Promotion.environment)
    )
    return {(project, environment): count for project, environment, count in session.execute(stmt)}


def _seconds_between(earlier: Any, later: Any, postgres: bool) -> Any:
    """Seconds as a float made by the database: 16,000 rows of two timestamps each cost more to
    turn into Python datetimes than the query took."""
    if postgres:
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _arrivals(project: Any, environment: Any, per_cell: int, postgres: bool) -> Select[Any]:
    return (
        select(
            Promotion.project,
            Promotion.environment,
            _seconds_between(Build.created_at, Promotion.finished_at, postgres).label("seconds"),
        )
        .join(Build, Build.id == Promotion.build_id)
        .where(
            Promotion.project == project,
            Promotion.environment == environment,
            literal_in(Promotion.status, ARRIVED),
            Promotion.finished_at >= bindparam("since"),
            Promotion.trigger != "rollback",
            Build.created_at.is_not(None),
        )
        .order_by(Promotion.finished_at.desc())
        .limit(per_cell)
    )


@functools.lru_cache(maxsize=64)
def _arrivals_statement(n: int, per_cell: int, postgres: bool) -> Select[Any] | CompoundSelect[Any]:
    if postgres:
        table = _cells_table()
        newest = _arrivals(table.c.project, table.c.environment, per_cell, postgres).lateral("arrivals")
        return select(newest).select_from(table).join(newest, true())
    return _union(
        [_arrivals(project, environment, per_cell, postgres) for project, environment in map(_cell_of, range(n))]
    )


def arrival_delays(
    session: Session, cells: Sequence[Cell], since: dt.datetime, per_cell: int = 200
) -> dict[Cell, list[float]]:
    """Seconds from push (the build queued) to arrival, for each cell's newest ``per_cell``
    arrivals since ``since``; a rollback is not an arrival of new work and is left out."""
    if not cells:
        return {}
    postgres = session.get_bind().dialect.name == "postgresql"
    rows = session.execute(
        _arrivals_statement(0 if postgres else len(cells), per_cell, postgres), _bind(cells, postgres, since=since)
    )
    delays: dict[Cell, list[float]] = defaultdict(list)
    for project, environment, seconds in rows:
        delays[(project, environment)].append(round(float(seconds), 3))  # julianday is exact to ~10 µs
    return dict(delays)
