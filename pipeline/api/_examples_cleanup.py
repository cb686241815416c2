"""Example values of the registry cleanup (``POST /api/v1/cleanup``), in the story of ``_examples``."""

from __future__ import annotations

from pydantic.config import JsonDict, JsonValue

from pipeline.api._examples import BUILD_ID, COMMIT, DIGEST, PREVIOUS_COMMIT, PREVIOUS_DIGEST, PROJECT

__all__ = ["CLEANUP", "CLEANUP_DECISIONS", "CLEANUP_PROJECT", "CLEANUP_REFUSED", "CLEANUP_REQUESTS", "DELETED_IMAGE"]

_OLD_BUILD = BUILD_ID - 30
KEPT: JsonDict = {
    "build_id": BUILD_ID,
    "digest": DIGEST,
    "commit": COMMIT,
    "branch": "main",
    "tags": [f"main-{COMMIT[:7]}", "latest"],
    "action": "keep",
    "reason": "runs in prod (promotion 17)",
}
DELETED: JsonDict = {
    "build_id": _OLD_BUILD,
    "digest": PREVIOUS_DIGEST,
    "commit": PREVIOUS_COMMIT,
    "branch": "fix-login",
    "tags": [f"fix-login-{PREVIOUS_COMMIT[:7]}"],
    "action": "delete",
    "reason": f"branch fix-login was deleted in Git and {PREVIOUS_COMMIT[:12]} is on no branch or tag; "
    "built more than 7 days ago",
}
CLEANUP_DECISIONS: list[JsonValue] = [KEPT, DELETED]
DELETED_IMAGE: JsonDict = {
    "digest": PREVIOUS_DIGEST,
    "build_ids": [_OLD_BUILD],
    "tags": [f"fix-login-{PREVIOUS_COMMIT[:7]}"],
    "signatures": [f"{PREVIOUS_DIGEST.replace(':', '-')}.sig"],
}
CLEANUP_PROJECT: JsonDict = {
    "project": PROJECT,
    "dry_run": False,
    "kept": 1,
    "deleted": 1,
    "decisions": CLEANUP_DECISIONS,
    "deleted_images": [DELETED_IMAGE],
    "refused": None,
    "errors": [],
    "seconds": 0.84,
}
CLEANUP_REFUSED: JsonDict = {
    **CLEANUP_PROJECT,
    "deleted_images": [],
    "decisions": [
        KEPT,
        {**DELETED, "action": "keep", "reason": "not deleted: registry registry.example.com refuses deletes"},
    ],
    "kept": 2,
    "deleted": 0,
    "refused": "registry registry.example.com refuses deletes (DELETE of manifest "
    f"{PREVIOUS_DIGEST} in acme/hello answered 405): enable them (distribution: "
    "storage.delete.enabled: true)",
}
CLEANUP: JsonDict = {"projects": [CLEANUP_PROJECT]}
CLEANUP_REQUESTS: list[JsonDict] = [{"project": PROJECT, "dry_run": True}, {"project": None, "dry_run": False}]
