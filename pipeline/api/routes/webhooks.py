"""``POST /webhooks/{provider}``: read the body within the limit, hand it to intake."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from pipeline import intake
from pipeline.api.deps import ConfigDep, DatabaseDep
from pipeline.api.schemas import WebhookAnswer
from pipeline.errors import PayloadTooLarge

router = APIRouter(tags=["webhooks"])


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


@router.post(
    "/webhooks/{provider}",
    response_model=WebhookAnswer,
    responses={202: {"model": WebhookAnswer, "description": "builds queued"}},
    summary="Receive a Git host's push webhook",
)
async def receive_webhook(provider: str, request: Request, config: ConfigDep, db: DatabaseDep) -> JSONResponse:
    body = await _read_limited(request, intake.MAX_BODY_BYTES)
    result = await run_in_threadpool(intake.receive, db, config, provider, dict(request.headers), body)
    return JSONResponse(result.body(), status_code=result.status_code)
