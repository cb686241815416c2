"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from pipeline.api.deps import DatabaseDep
from pipeline.store import current_revision, head_revision

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers and its schema is current")
def readyz(db: DatabaseDep) -> JSONResponse:
    try:
        with db.session() as session:
            session.execute(text("SELECT 1"))
        current, head = current_revision(db), head_revision()
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "detail": f"database: {type(exc).__name__}"}, 503)
    if current != head:
        detail = f"schema at {current}, code expects {head}: run `pipeline migrate`"
        return JSONResponse({"status": "unavailable", "detail": detail}, 503)
    return JSONResponse({"status": "ok", "schema": current})
