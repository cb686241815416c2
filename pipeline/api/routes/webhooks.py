"""``POST /webhooks/{provider}``: read the body within the limit, hand it to intake.

On PostgreSQL the delivery is handled on the event loop and recorded through an async
connection pool that this router opens when the app starts and closes when it stops (a router
lifespan, merged into the app's by ``include_router``): see ``pipeline.intake.receive_async``. Without
that pool (SQLite, or an app whose lifespan did not run) it takes the synchronous path in the
threadpool, as before.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from pipeline import intake
from pipeline.api import _examples as ex
from pipeline.api.problems import problem_responses
from pipeline.api.schemas import WebhookAnswer
from pipeline.config import Config
from pipeline.errors import PayloadTooLarge
from pipeline.store import Database


@asynccontextmanager
async def _intake_pool(app: FastAPI) -> AsyncIterator[None]:
    db = getattr(app.state, "db", None)
    pool = intake.open_pool(db) if db is not None and db.dialect == "postgresql" else None
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
    pool: intake.Pool | None = getattr(state, "intake_pool", None)
    remote = request.client.host if request.client else None
    headers = dict(request.headers)
    try:
        body = await _read_limited(request, intake.MAX_BODY_BYTES)
    except PayloadTooLarge as exc:  # logged as every delivery is, then refused
        declared = request.headers.get("content-length", "")
        size = int(declared) if declared.isdigit() else intake.MAX_BODY_BYTES + 1
        await intake.record_decision(pool, db, intake.refused(provider, headers, size, remote, exc))
        raise AssertionError("unreachable: a refusal raises once logged") from None
    if pool is None and db.dialect != "postgresql":
        result = await run_in_threadpool(
            functools.partial(intake.receive, db, config, provider, headers, body, remote_addr=remote)
        )
    else:
        result = await intake.receive_async(pool, db, config, provider, headers, body, remote_addr=remote)
    return JSONResponse(result.body(), status_code=result.status_code)


# Served by a plain Starlette route, which comes first and so is the one that matches: FastAPI's
# request handling (dependency solving, parameter validation) was a tenth of a delivery's CPU.
router.routes.append(Route("/webhooks/{provider}", _receive, methods=["POST"], include_in_schema=False))


_JSON = "application/json"
_PROVIDERS = ", ".join(intake.PROVIDERS)


@router.post(
    "/webhooks/{provider}",
    response_model=WebhookAnswer,
    summary="Receive a Git host's push webhook",
    description=(
        "Point a Git host's push webhook here (`/webhooks/github`, `/webhooks/gitlab`, ...). The body names the "
        "repository, which must match a configured project; the project's secret verifies the signature (GitHub "
        "`X-Hub-Signature-256`, GitLab `X-Gitlab-Token`, Gitea `X-Gitea-Signature`, Bitbucket `X-Hub-Signature`, "
        "generic `X-Pipeline-Signature`), and only then is each pushed branch or tag that passes the project's "
        "filters queued as a build: 202 with the build ids. A delivery that builds nothing (a ping, a filtered "
        "branch, a delivery seen before) is answered 200 with the reason. Needs no API token: the signature is "
        "the authentication. The body is the host's own push payload (JSON; GitHub and Gitea also send it "
        "form-encoded), at most 25 MiB."
    ),
    responses={
        200: {
            "description": "nothing to build: the reason says why",
            "content": {_JSON: {"example": ex.WEBHOOK_ANSWERS[1]}},
        },
        202: {
            "model": WebhookAnswer,
            "description": "builds queued",
            "content": {_JSON: {"example": ex.WEBHOOK_ANSWERS[0]}},
        },
        **problem_responses(
            400,
            401,
            404,
            413,
            415,
            422,
            examples={
                400: {
                    "type": "/problems/bad-payload",
                    "title": "Malformed payload",
                    "detail": "missing header X-GitHub-Event: is this a GitHub webhook?",
                },
                401: {
                    "type": "/problems/bad-signature",
                    "title": "Signature verification failed",
                    "detail": "X-Hub-Signature-256 does not match the body signed with the project's secret",
                },
                404: {"detail": f"repository {ex.REPO_URL!r} matches no configured project"},
            },
        ),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "the Git host's push payload",
            "content": {_JSON: {"schema": {"type": "object", "additionalProperties": True}, "example": ex.GITHUB_PUSH}},
        }
    },
)
async def receive_webhook(
    provider: Annotated[str, Path(description=f"who sends the delivery: {_PROVIDERS}", examples=["github"])],
    request: Request,
) -> JSONResponse:
    """The OpenAPI entry of the route above (the same handler, should this one ever match)."""
    return await _receive(request)
