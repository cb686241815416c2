"""Example values of the OpenAPI document, defined once so that every example tells one story.

Project ``hello`` is built from ``git.example.com/acme/hello`` and pushed to
``registry.example.com``: build 42 of commit ``COMMIT`` on ``main`` made ``DIGEST``, which went
to staging automatically (promotion 16) and to prod by hand (promotion 17), where it replaced
``PREVIOUS_DIGEST`` (build 41, promotion 12). Tokens: ``ci-bot`` (builder), ``release-team``
(promoter limited to prod), ``admin``. Plain JSON values: the models and routes that show
them import this module, never the other way round. FastAPI drops every ``None`` from the
document it builds, nulls in examples too: ``_openapi.keep_example_nulls`` puts them back.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pydantic.config import JsonDict, JsonValue

from pipeline.signing import provenance_statement

PROJECT = "hello"
REPO_URL = "https://git.example.com/acme/hello.git"
REGISTRY = "registry.example.com"
REPOSITORY = "acme/hello"
COMMIT = "ef69e5f77b898e5e53375a5480cecb5c5f6bc50b"
PREVIOUS_COMMIT = "366df45806b2840662c957b8f8c0619f86c3e398"
GITOPS_COMMIT = "98436b2e5babc9e02ae418bfbb6aa59f40d17b43"
DIGEST = "sha256:57cfc7e925bdb7640e6bf313b4808dcbad93879ae96bfe5d47ddd06b1a6a1ad9"
PREVIOUS_DIGEST = "sha256:45e8075eab101e408b8df53bebefae771b31b37a97061f83882e259380e58d88"
UNKNOWN_DIGEST = "sha256:1e15ec60f2677d590b190d1d8495ee525ad7d5e1bc2166ae45188b3a6ffe64a3"  # no build made it
IMAGE = f"{REGISTRY}/{REPOSITORY}@{DIGEST}"
BUILD_ID: int = 42
PREVIOUS_BUILD_ID, QUEUED_BUILD_ID = 41, 43
PROMOTION_ID, STAGING_PROMOTION_ID, PREVIOUS_PROMOTION_ID, ROLLBACK_PROMOTION_ID = 17, 16, 12, 18
TOKEN_ID = 3
WORKER = "pipeline-0:4121:a3f2"
ENVIRONMENTS = {"staging": "acme/staging/hello", "prod": "acme/prod/hello"}
VIEWER_TOKEN: str = "dashboard"
BUILDER_TOKEN, PROMOTER_TOKEN = "ci-bot", "release-team"
CURSOR = "eyJiZWZvcmUiOjQyfQ"  # what the API answers as next_cursor after build 42: {"before":42}


def _at(clock: str, day: str = "2025-05-14") -> str:
    """An RFC 3339 UTC timestamp on the story's day."""
    return f"{day}T{clock}Z"


LAYERS = [
    {
        "digest": "sha256:e779e9e7bd3bc85030a2a955b1e44b6ce8fac769b4fe8661efba2bac02854afa",
        "size": 3_212_505,
        "media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
    },
    {
        "digest": "sha256:cc404e8d39f7732e3efcb2c367d1e7ab58b8662c6c9a6270a909e53febe80e05",
        "size": 5_198_832,
        "media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
    },
    {
        "digest": "sha256:fd8aff9a82bde32e2b093d3ca30f19a7e37816306ee8c36a6ff12cf6f53ba089",
        "size": 10_000,
        "media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
    },
]
BUILD_ARGS = {"GIT_COMMIT": COMMIT}


def _provenance() -> dict[str, Any]:
    started, finished = (dt.datetime.fromisoformat(_at(t)) for t in ("09:30:13", "09:31:46"))
    return provenance_statement(
        repository=f"{REGISTRY}/{REPOSITORY}",
        digest=DIGEST,
        source_repo=REPO_URL,
        ref="refs/heads/main",
        commit=COMMIT,
        dockerfile="Dockerfile",
        build_args=BUILD_ARGS,
        build_id=BUILD_ID,
        started_on=started,
        finished_on=finished,
        engine="default",
        builder_mode="buildx",
        platforms=["linux/amd64"],
    )


PROVENANCE = _provenance()

BUILD: dict[str, Any] = {
    "id": BUILD_ID,
    "project": PROJECT,
    "commit": COMMIT,
    "branch": "main",
    "ref": "refs/heads/main",
    "trigger": "webhook",
    "actor": "github delivery 72d3162e-cc78-11e3-81ab-4c9367dc0958",
    "status": "succeeded",
    "build_args": BUILD_ARGS,
    "image": IMAGE,
    "tags": [f"main-{COMMIT[:7]}", "latest"],
    "digest": DIGEST,
    "engine": "default",
    "builder_mode": "buildx",
    "error": None,
    "attempts": 1,
    "worker": WORKER,
    "created_at": _at("09:30:12"),
    "started_at": _at("09:30:13"),
    "finished_at": _at("09:31:47"),
    "not_before": None,
    "steps_total": 12,
    "steps_cached": 9,
    "cache_from": [f"{REGISTRY}/{REPOSITORY}:main-{PREVIOUS_COMMIT[:7]}"],
    "image_size": sum(layer["size"] for layer in LAYERS),
    "layers": LAYERS,
    "insight": None,
    "advice": [
        {
            "source": "hadolint",
            "code": "DL3007",
            "level": "warning",
            "line": 1,
            "message": "Using latest is prone to errors if the image will ever update. Pin the version "
            "explicitly to a release tag",
        }
    ],
    "provenance": PROVENANCE,
}
QUEUED_BUILD: dict[str, Any] = {
    "id": QUEUED_BUILD_ID,
    "project": PROJECT,
    "commit": COMMIT,
    "branch": None,
    "ref": "refs/tags/v1.4.0",
    "trigger": "api",
    "actor": "release-bot",
    "status": "queued",
    "build_args": {},
    "image": None,
    "tags": [],
    "digest": None,
    "engine": None,
    "builder_mode": None,
    "error": None,
    "attempts": 0,
    "worker": None,
    "created_at": _at("10:05:00"),
    "started_at": None,
    "finished_at": None,
    "not_before": None,
    "steps_total": None,
    "steps_cached": None,
    "cache_from": [],
    "image_size": None,
    "layers": [],
    "insight": None,
    "advice": [],
    "provenance": None,
}
BUILD_PAGE: JsonDict = {"items": [QUEUED_BUILD, BUILD], "next_cursor": CURSOR}
BUILD_REQUESTS: list[JsonDict] = [
    {"project": PROJECT, "ref": "main"},
    {"project": PROJECT, "ref": "v1.4.0"},
    {"project": PROJECT, "commit": COMMIT},
]

LOG_LINES: list[JsonValue] = [
    {"seq": 1, "line": f"checking out {COMMIT} (refs/heads/main) from {REPO_URL}", "created_at": _at("09:30:13")},
    {
        "seq": 2,
        "line": "#9 [build 3/3] RUN go build -trimpath -o /out/hello ./cmd/hello",
        "created_at": _at("09:31:02"),
    },
    {
        "seq": 3,
        "line": f"pushed {IMAGE}; the registry reports it for tags main-{COMMIT[:7]}, latest",
        "created_at": _at("09:31:46"),
    },
]
LOG_PAGE: JsonDict = {"build_id": BUILD_ID, "status": "succeeded", "lines": LOG_LINES, "next_seq": 3}
# what ?follow=true streams (application/x-ndjson): each line as written, then the end marker
LOG_STREAM = (
    "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in LOG_LINES)
    + json.dumps({"status": "succeeded", "end": True})
    + "\n"
)

WEBHOOK_ANSWERS: list[JsonDict] = [
    {"outcome": "queued", "reason": "", "project": PROJECT, "build_ids": [BUILD_ID]},
    {
        "outcome": "ignored",
        "reason": "branch 'docs/typo' does not match the project's branches ['main']",
        "project": PROJECT,
        "build_ids": [],
    },
]
GITHUB_PUSH = {
    "ref": "refs/heads/main",
    "before": PREVIOUS_COMMIT,
    "after": COMMIT,
    "repository": {"full_name": REPOSITORY, "clone_url": REPO_URL, "html_url": "https://git.example.com/acme/hello"},
    "head_commit": {"id": COMMIT, "message": "Serve /healthz"},
    "commits": [
        {"id": COMMIT, "message": "Serve /healthz", "added": [], "removed": [], "modified": ["cmd/hello/main.go"]}
    ],
}

_PROD = f"{REGISTRY}/{ENVIRONMENTS['prod']}"
PROMOTION: dict[str, Any] = {
    "id": PROMOTION_ID,
    "project": PROJECT,
    "environment": "prod",
    "digest": DIGEST,
    "build_id": BUILD_ID,
    "status": "succeeded",
    "trigger": "manual",
    "actor": PROMOTER_TOKEN,
    "reason": "release 1.4",
    "source_ref": f"{REGISTRY}/{ENVIRONMENTS['staging']}@{DIGEST}",
    "target_ref": f"{_PROD}:prod@{DIGEST}",
    "previous_digest": PREVIOUS_DIGEST,
    "rollback_to_id": PREVIOUS_PROMOTION_ID,
    "restores_id": None,
    "copy_report": {
        "digest": DIGEST,
        "manifests_copied": 1,
        "manifests_present": 0,
        "blobs_present": 2,
        "blobs_mounted": 1,
        "blobs_copied": 1,
        "bytes_copied": 10_000,
        "tags": ["prod"],
    },
    "gitops_commit": GITOPS_COMMIT,
    "gitops_pull_request": None,
    "steps": [
        {
            "kind": "copy-image",
            "status": "succeeded",
            "started_at": _at("10:02:06"),
            "finished_at": _at("10:02:09"),
            "message": f"copied 1 blobs (2 already there, 1 mounted, 10000 bytes) to {_PROD}@{DIGEST}",
        },
        {
            "kind": "copy-signatures",
            "status": "succeeded",
            "started_at": _at("10:02:09"),
            "finished_at": _at("10:02:10"),
            "message": f"{DIGEST.replace(':', '-')}.sig (1 signatures) copied; {DIGEST.replace(':', '-')}.att copied",
        },
        {
            "kind": "git-push",
            "status": "succeeded",
            "started_at": _at("10:02:10"),
            "finished_at": _at("10:02:17"),
            "message": f"pushed {GITOPS_COMMIT[:12]} to https://git.example.com/acme/deploy.git main:prod/hello.yaml: "
            f"{PREVIOUS_DIGEST} -> {DIGEST}",
        },
        {
            "kind": "move-tag",
            "status": "succeeded",
            "started_at": _at("10:02:17"),
            "finished_at": _at("10:02:18"),
            "message": f"prod now points at {DIGEST}",
        },
    ],
    "error": None,
    "attempts": 1,
    "worker": WORKER,
    "created_at": _at("10:02:05"),
    "started_at": _at("10:02:06"),
    "finished_at": _at("10:02:19"),
}
ROLLBACK: dict[str, Any] = {
    **PROMOTION,
    "id": ROLLBACK_PROMOTION_ID,
    "digest": PREVIOUS_DIGEST,
    "build_id": PREVIOUS_BUILD_ID,
    "status": "pending",
    "trigger": "rollback",
    "reason": f"roll back from {DIGEST} (promotion {PROMOTION_ID})",
    "source_ref": None,
    "target_ref": None,
    "previous_digest": None,
    "rollback_to_id": None,
    "restores_id": PREVIOUS_PROMOTION_ID,
    "copy_report": None,
    "gitops_commit": None,
    "steps": [],
    "attempts": 0,
    "worker": None,
    "created_at": _at("11:20:03"),
    "started_at": None,
    "finished_at": None,
}
PROMOTION_PAGE: JsonDict = {"items": [PROMOTION], "next_cursor": None}
PROMOTION_REQUESTS: list[JsonDict] = [
    {"project": PROJECT, "environment": "prod", "build_id": BUILD_ID, "reason": "release 1.4"},
    {"project": PROJECT, "environment": "prod", "digest": DIGEST, "reason": "release 1.4"},
]
REASONS: list[JsonDict] = [{"reason": "CVE-2025-1234 in the base image"}]
ROLLBACK_REASON = {"reason": "1.4 fails checkout for EU customers"}

HOLD: JsonDict = {
    "project": PROJECT,
    "environment": "prod",
    "reason": f"rollback by promotion {ROLLBACK_PROMOTION_ID}",
    "actor": PROMOTER_TOKEN,
    "promotion_id": ROLLBACK_PROMOTION_ID,
    "created_at": _at("11:20:03"),
    "released_at": None,
    "released_by": None,
}
RELEASED_HOLD: JsonDict = {**HOLD, "released_at": _at("13:45:00"), "released_by": PROMOTER_TOKEN}
ARRIVAL: JsonDict = {
    "promotion_id": PROMOTION_ID,
    "digest": DIGEST,
    "build_id": BUILD_ID,
    "commit": COMMIT,
    "branch": "main",
    "actor": PROMOTER_TOKEN,
    "trigger": "manual",
    "since": _at("10:02:19"),
}
PREVIOUS_ARRIVAL: JsonDict = {
    "promotion_id": PREVIOUS_PROMOTION_ID,
    "digest": PREVIOUS_DIGEST,
    "build_id": PREVIOUS_BUILD_ID,
    "commit": None,
    "branch": None,
    "actor": PROMOTER_TOKEN,
    "trigger": "manual",
    "since": _at("16:40:51", "2025-05-13"),
}
LEAD_TIME: JsonDict = {"median_seconds": 1830.0, "p90_seconds": 7204.5, "samples": 14, "window_days": 30}
STAGING: JsonDict = {
    "project": PROJECT,
    "environment": "staging",
    "registry": REGISTRY,
    "repository": ENVIRONMENTS["staging"],
    "current": {
        **ARRIVAL,
        "promotion_id": STAGING_PROMOTION_ID,
        "actor": "auto",
        "trigger": "auto",
        "since": _at("09:32:04"),
    },
    "previous": None,
    "held": None,
    "waiting": 0,
    "lead_time": {"median_seconds": 98.0, "p90_seconds": 131.0, "samples": 23, "window_days": 30},
}
PROD: JsonDict = {
    "project": PROJECT,
    "environment": "prod",
    "registry": REGISTRY,
    "repository": ENVIRONMENTS["prod"],
    "current": ARRIVAL,
    "previous": PREVIOUS_ARRIVAL,
    "held": None,
    "waiting": 0,
    "lead_time": LEAD_TIME,
}
HELD_PROD: JsonDict = {**PROD, "held": HOLD, "waiting": 1}
ENVIRONMENT_MATRIX: JsonDict = {"items": [STAGING, PROD]}

REJECTION: JsonDict = {
    "digest": PREVIOUS_DIGEST,
    "reason": REASONS[0]["reason"],
    "actor": PROMOTER_TOKEN,
    "created_at": _at("11:18:40"),
}
ATTESTATIONS: JsonDict = {
    "reference": f"{REGISTRY}/{REPOSITORY}:{DIGEST.replace(':', '-')}.att",
    "present": True,
    "layers": 1,
    "verified": True,
    "verified_layers": 1,
    "detail": "1 of 1 envelopes verify with /etc/pipeline/signing.key",
}
IMAGE_LINEAGE: JsonDict = {
    "digest": DIGEST,
    "builds": [BUILD],
    "promotions": [
        PROMOTION,
        {
            **PROMOTION,
            "id": STAGING_PROMOTION_ID,
            "environment": "staging",
            "trigger": "auto",
            "actor": "auto",
            "reason": "",
            "source_ref": IMAGE,
            "target_ref": f"{REGISTRY}/{ENVIRONMENTS['staging']}:staging@{DIGEST}",
            "previous_digest": PREVIOUS_DIGEST,
            "gitops_commit": None,
            "steps": PROMOTION["steps"][:2] + PROMOTION["steps"][3:],
            "created_at": _at("09:31:50"),
            "started_at": _at("09:31:51"),
            "finished_at": _at("09:32:04"),
        },
    ],
    "rejected": None,
    "running_in": ["staging", "prod"],
    "provenance": PROVENANCE,
    "attestations": None,
}

TOKEN_REQUESTS: list[JsonDict] = [
    {"name": BUILDER_TOKEN, "role": "builder"},
    {"name": PROMOTER_TOKEN, "role": "promoter", "environments": ["prod"]},
]
SECRET = "pipe_dzI7bK35gKU5hJlzKI4RyPfxnmeL3znOMov9rBrnK-w"  # what `pipeline tokens create` prints, once
TOKEN: JsonDict = {
    "id": TOKEN_ID,
    "name": BUILDER_TOKEN,
    "role": "builder",
    "environments": None,
    "prefix": SECRET[:12],
    "created_by": "admin",
    "created_at": _at("08:15:00", "2025-03-02"),
    "last_used_at": _at("09:30:12"),
    "revoked_at": None,
}
PROMOTER: JsonDict = {
    **TOKEN,
    "id": TOKEN_ID + 1,
    "name": PROMOTER_TOKEN,
    "role": "promoter",
    "environments": ["prod"],
    "prefix": "pipe_Q2xv0Fh",
    "created_at": _at("08:16:30", "2025-03-02"),
    "last_used_at": _at("11:20:03"),
}
REVOKED: JsonDict = {
    **TOKEN,
    "id": TOKEN_ID - 1,
    "name": "old-ci",
    "prefix": "pipe_7MvRk2d",
    "created_at": _at("14:02:11", "2024-11-20"),
    "last_used_at": _at("08:10:44", "2025-03-02"),
    "revoked_at": _at("08:20:00", "2025-03-02"),
}
NEW_TOKEN: JsonDict = {**TOKEN, "last_used_at": None, "token": SECRET}
JUST_REVOKED: JsonDict = {**TOKEN, "revoked_at": _at("10:30:00")}
TOKENS: list[JsonDict] = [REVOKED, TOKEN, PROMOTER]

CONFIG_FINGERPRINT, PREVIOUS_CONFIG_FINGERPRINT = "4f0c2a9e7b1d3856", "a93e5d70c4b2f118"
RELOAD_RECORD: JsonDict = {
    "id": 5,
    "fingerprint": CONFIG_FINGERPRINT,
    "actor": "admin",
    "summary": "added worker; changed hello",
    "created_at": _at("12:00:41"),
}
CONFIG: JsonDict = {
    "source": "/etc/pipeline/config.yaml",
    "fingerprint": CONFIG_FINGERPRINT,
    "loaded_at": _at("12:00:41"),
    "projects": {PROJECT: ["staging", "prod"], "worker": ["staging"]},
    "last_reload": RELOAD_RECORD,
}
CONFIG_RELOAD: JsonDict = {
    "reload_id": 5,
    "source": "/etc/pipeline/config.yaml",
    "fingerprint": CONFIG_FINGERPRINT,
    "previous": PREVIOUS_CONFIG_FINGERPRINT,
    "changed": True,
    "summary": RELOAD_RECORD["summary"],
    "projects_added": ["worker"],
    "projects_removed": [],
    "projects_changed": [PROJECT],
    "sections": [],
    "restart_required": [],
    "others_within_seconds": 5.0,
}


# the service's own endpoints and its problems, in a module of their own; re-exported so that
# routes keep asking this one module (``ex.READY``, ``ex.forbidden``)
from pipeline.api._examples_service import (
    HEALTH as HEALTH,
)
from pipeline.api._examples_service import (
    METRICS as METRICS,
)
from pipeline.api._examples_service import (
    NOT_READY as NOT_READY,
)
from pipeline.api._examples_service import (
    PROBLEMS as PROBLEMS,
)
from pipeline.api._examples_service import (
    READY as READY,
)
from pipeline.api._examples_service import (
    forbidden as forbidden,
)
