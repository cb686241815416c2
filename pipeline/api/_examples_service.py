"""Example values of the service's own endpoints (health, readiness, metrics) and of every
problem answer, in the story of ``_examples``."""

from __future__ import annotations

from typing import Any

from pydantic.config import JsonDict

from pipeline.api._examples import BUILD_ID, VIEWER_TOKEN

__all__ = ["HEALTH", "METRICS", "NOT_READY", "PROBLEMS", "READY", "forbidden"]

HEALTH = {"status": "ok"}
READY: list[JsonDict] = [{"status": "ok", "schema": "0010"}, {"status": "ok", "schema": "0010", "engine": "default"}]
NOT_READY: list[JsonDict] = [
    {"status": "unavailable", "detail": "schema at 0009, code expects 0010: run `pipeline migrate`"},
    {"status": "unavailable", "detail": "no Docker engine answers (see `pipeline doctor`)"},
]
METRICS = (
    "# HELP pipeline_builds_total Finished builds by outcome\n"
    "# TYPE pipeline_builds_total counter\n"
    'pipeline_builds_total{project="hello",status="succeeded"} 41.0\n'
    'pipeline_builds_total{project="hello",status="failed"} 3.0\n'
    "# HELP pipeline_queue_depth Rows waiting to be worked\n"
    "# TYPE pipeline_queue_depth gauge\n"
    'pipeline_queue_depth{queue="builds"} 1.0\n'
    'pipeline_queue_depth{queue="promotions"} 0.0\n'
)


def _problem(status: int, type_: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": type_, "title": title, "status": status, "detail": detail, **extra}


# one example problem per status: what the service answers most often with it
PROBLEMS: dict[int, dict[str, Any]] = {
    400: _problem(400, "about:blank", "There was an error parsing the body", "There was an error parsing the body"),
    401: _problem(401, "/problems/unauthenticated", "Authentication required", "this API token is unknown or revoked"),
    403: _problem(
        403, "/problems/forbidden", "Not allowed", f"{VIEWER_TOKEN} has role viewer; this needs builder or higher"
    ),
    404: _problem(404, "/problems/not-found", "Not found", "no project named 'helo' in the config"),
    409: _problem(
        409,
        "/problems/conflict",
        "Conflict",
        f"build {BUILD_ID} is already succeeded; only queued or running builds can be cancelled",
    ),
    413: _problem(
        413, "/problems/payload-too-large", "Payload too large", "webhook body is 31457280 bytes; the limit is 26214400"
    ),
    415: _problem(
        415,
        "/problems/unsupported-media-type",
        "Unsupported media type",
        "content type 'text/plain': send application/json or application/x-www-form-urlencoded",
    ),
    422: _problem(
        422,
        "/problems/invalid-request",
        "Invalid request",
        "body.project: Field required",
        errors=[{"where": "body.project", "message": "Field required"}],
    ),
}


def forbidden(name: str, role: str, needs: str) -> dict[str, Any]:
    """The 403 detail for a token ``name`` of ``role`` where ``needs`` is required."""
    return {"detail": f"{name} has role {role}; this needs {needs} or higher"}
