"""Liveness and readiness probes.

Ready means the database answers with the schema this code expects and, in a process that
builds (``serve`` with build workers), that at least one builder answers; the answer lists every
builder with its kind, version and platforms (or why it is unhealthy). Builder probes are cached
for a few seconds (``BuilderPool``), so a probe every second does not dial every builder each
time. An API-only process (``pipeline api``) does not need a builder.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic.config import JsonDict
from sqlalchemy import text

from pipeline import builder
from pipeline.api import _examples as ex
from pipeline.api.deps import ConfigDep, DatabaseDep
from pipeline.api.schemas import Readiness
from pipeline.config import Config
from pipeline.store import current_revision, head_revision

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    summary="The process is up",
    description=(
        "Liveness probe: answers 200 as long as the process serves HTTP; it looks at nothing else "
        "(not even the database). Needs no token."
    ),
    responses={200: {"description": "the process is up", "content": {"application/json": {"example": ex.HEALTH}}}},
)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _builders(config: Config) -> list[dict[str, object]]:
    """Every builder's probe (at most a few seconds old): kind, version, platforms, or why not."""
    return [status.to_dict() for status in builder.BuilderPool.from_config(config).statuses()]


def _named(summaries: tuple[str, ...], values: list[JsonDict]) -> dict[str, dict[str, object]]:
    return {
        f"example{i}": {"summary": summary, "value": value}
        for i, (summary, value) in enumerate(zip(summaries, values, strict=True), 1)
    }


@router.get(
    "/readyz",
    summary="The database answers with a current schema (and, where builds run, an engine)",
    description=(
        "Readiness probe: 200 when the database answers with the schema revision this code expects and, "
        "in a process that also builds (`pipeline serve` with build workers), a builder answers "
        "(checked at most every few seconds; `builders` lists each with its kind, version and platforms). "
        "503 with the reason otherwise. Needs no token."
    ),
    responses={
        200: {
            "model": Readiness,
            "description": "ready to serve",
            "content": {
                "application/json": {"examples": _named(("pipeline api", "pipeline serve (builds here)"), ex.READY)}
            },
        },
        503: {
            "model": Readiness,
            "description": "not ready: the detail says why",
            "content": {
                "application/json": {
                    "examples": _named(
                        ("schema behind: run pipeline migrate", "no Docker engine answers"), ex.NOT_READY
                    )
                }
            },
        },
    },
)
def readyz(request: Request, db: DatabaseDep, config: ConfigDep) -> JSONResponse:
    try:
        with db.session() as session:
            session.execute(text("SELECT 1"))
        current, head = current_revision(db), head_revision()
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "detail": f"database: {type(exc).__name__}"}, 503)
    if current != head:
        detail = f"schema at {current}, code expects {head}: run `pipeline migrate`"
        return JSONResponse({"status": "unavailable", "detail": detail}, 503)
    if not getattr(request.app.state, "needs_engine", False):
        return JSONResponse({"status": "ok", "schema": current})
    builders = _builders(config)
    healthy = [b["name"] for b in builders if b["healthy"]]
    if not healthy:
        why = "; ".join(f"{b['name']}: {b['detail']}" for b in builders)
        return JSONResponse(
            {
                "status": "unavailable",
                "detail": f"no builder answers (see `pipeline doctor`): {why}",
                "builders": builders,
            },
            503,
        )
    return JSONResponse({"status": "ok", "schema": current, "engine": healthy[0], "builders": builders})
