"""Example values of the smoke test and the verification after promotion (issue 21), in the
story of ``_examples``: prod's promotion of the build's digest, smoke-tested, then verified."""

from __future__ import annotations

from typing import Any

from pipeline.api._examples import COMMIT, DIGEST, ENVIRONMENTS, PROMOTION, REGISTRY, _at

__all__ = ["PROMOTION_VERIFIED", "SMOKE_STEP", "VERIFICATION"]

SMOKE_STEP: dict[str, Any] = {
    "kind": "smoke-test",
    "status": "succeeded",
    "started_at": _at("10:02:09"),
    "finished_at": _at("10:02:10"),
    "message": f"smoke test of {REGISTRY}/{ENVIRONMENTS['prod']}@{DIGEST} on builder-1 passed: probe passed after "
    "0.4 s (2 tries): http://127.0.0.1:49153/healthz answered 200: 'ok'",
    "engine": "builder-1",
    "image": f"{REGISTRY}/{ENVIRONMENTS['prod']}@{DIGEST}",
    "network": "published",
    "probe": {"url": "http://127.0.0.1:49153/healthz", "status": 200, "body": "ok\n", "error": None},
    "seconds": 1.12,
    "log": ["hello 1.4 listening on :8080"],
}
VERIFICATION: dict[str, Any] = {
    "status": "verified",
    "url": "https://prod.example.com/version",
    "expect_status": 200,
    "expect_body": COMMIT[:7],
    "checks": 3,
    "last_answer": {"url": "https://prod.example.com/version", "status": 200, "body": COMMIT[:7], "error": None},
    "error": None,
    "auto_rollback": True,
    "rollback_id": None,
    "deadline_at": _at("10:12:19"),
    "created_at": _at("10:02:19"),
    "finished_at": _at("10:02:41"),
}
PROMOTION_VERIFIED: dict[str, Any] = {
    **PROMOTION,
    "steps": [PROMOTION["steps"][0], SMOKE_STEP, *PROMOTION["steps"][1:]],
    "verification": VERIFICATION,
}
