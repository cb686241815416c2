"""Errors become RFC 9457 problem responses here, and only here."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipeline.api._examples import PROBLEMS
from pipeline.errors import PipelineError

__all__ = ["install_problem_handlers", "problem", "problem_responses"]

log = logging.getLogger(__name__)

_CREDENTIALS_IN_URL = re.compile(r"(://)[^/@\s]+@")
PROBLEM_JSON = "application/problem+json"


_PROBLEM_SCHEMA = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "with 422: each invalid field",
            "items": {"type": "object", "properties": {"where": {"type": "string"}, "message": {"type": "string"}}},
        },
    },
    "required": ["type", "title", "status", "detail"],
}
_MEANING = {
    400: "Malformed request",
    401: "No usable API token (or, for webhooks, signature)",
    403: "The token's role does not allow it",
    404: "No such resource",
    409: "Refused: the current state does not allow it",
    413: "Body too large",
    415: "Unsupported content type",
    422: "Invalid request",
}


def problem_responses(
    *statuses: int,
    examples: Mapping[int, Mapping[str, object]] | None = None,
) -> dict[int | str, dict[str, object]]:
    """OpenAPI entries for the problem bodies an endpoint can answer with, each with an example body:
    the usual one for its status, with what ``examples`` gives for it (say, this endpoint's ``detail``)."""
    given = examples or {}
    return {
        status: {
            "description": _MEANING.get(status, "Error"),
            "content": {
                PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA, "example": {**PROBLEMS[status], **given.get(status, {})}}
            },
        }
        for status in statuses
    }


def problem(status: int, title: str, detail: str, type_: str = "about:blank", **extra: object) -> JSONResponse:
    body = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": _CREDENTIALS_IN_URL.sub(r"\1***@", detail),
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


async def _pipeline_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PipelineError)
    if exc.status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.message)
    return problem(exc.status, exc.title, exc.message, exc.type)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"where": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
    detail = "; ".join(f"{e['where']}: {e['message']}" for e in errors)
    return problem(422, "Invalid request", detail, "/problems/invalid-request", errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem(exc.status_code, str(exc.detail), str(exc.detail))


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    """PostgreSQL refuses some text outright (NUL characters, which SQLite stores): that is the
    request's fault, whatever field or parameter carried it, never a server error."""
    assert isinstance(exc, DataError)
    if "NUL" in str(exc.orig):
        return problem(
            422, "Invalid request", "text must not contain NUL (\\u0000) characters", "/problems/invalid-request"
        )
    log.error("%s %s: %s", request.method, request.url.path, exc.orig)
    return problem(500, "Internal error", "the database refused a value; see the service's log")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PipelineError, _pipeline_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
