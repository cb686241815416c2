"""``POST /webhooks/{provider}``: read the body within the limit, hand it to intake.

On PostgreSQL the delivery is handled on the event loop and recorded through an async
connection pool that this router opens when the app starts and closes when it stops (a router
lifespan, merged into the app's by ``include_router``): see ``pipeline.intake._async``. Without
that pool (SQLite, or an app whose lifespan did not run) it takes the synchronous path in the
threadpool, as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from pipeline import intake
from pipeline.api.problems import problem_responses
from pipeline.api.schemas import WebhookAnswer
from pipeline.config import Config
from pipeline.errors import PayloadTooLarge
from pipeline.intake._async import Pool, open_pool, receive_async
from pipeline.store import Database


@asynccontextmanager
async def _intake_pool(app: FastAPI) -> AsyncIterator[None]:
    db = getattr(app.state, "db", None)
    pool = open_pool(db) if db is not None and db.dialect == "postgresql" else None
    app.state.intake_pool = pool
    try:
        yield
    finally:
        app.state.intake_pool = None
        if pool is not None:
            await pool.close()


router = APIRouter(tags=["webhooks"], lifespan=_intake_pool)


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"webhook body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"webhook body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _receive(request: Request) -> JSONResponse:
    # The config and database straight from the app, not through `ConfigDep`/`DatabaseDep`: FastAPI
    # runs plain-function dependencies in the threadpool, two thread hops per delivery.
    state = request.app.state
    config: Config = state.config
    db: Database = state.db
    provider: str = request.path_params["provider"]
    body = await _read_limited(request, intake.MAX_BODY_BYTES)
    pool: Pool | None = getattr(state, "intake_pool", None)
    if pool is None and db.dialect != "postgresql":
        result = await run_in_threadpool(intake.receive, db, config, provider, dict(request.headers), body)
    else:
        result = await receive_async(pool, db, config, provider, dict(request.headers), body)
    return JSONResponse(result.body(), status_code=result.status_code)


# Served by a plain Starlette route, which comes first and so is the one that matches: FastAPI's
# request handling (dependency solving, parameter validation) was a tenth of a delivery's CPU.
router.routes.append(Route("/webhooks/{provider}", _receive, methods=["POST"], include_in_schema=False))


@router.post(
    "/webhooks/{provider}",
    response_model=WebhookAnswer,
    responses={202: {"model": WebhookAnswer, "description": "builds queued"},
               **problem_responses(400, 401, 404, 413, 415, 422)},
    summary="Receive a Git host's push webhook",
)
async def receive_webhook(provider: str, request: Request) -> JSONResponse:
    """The OpenAPI entry of the route above (the same handler, should this one ever match)."""
    return await _receive(request)
