"""Schemathesis against the app's own OpenAPI document: no request, however odd, gets a server
error (5xx), and every answer matches what the document says of it (status, media type, body).

Run on the real app and a real database (SQLite and PostgreSQL), seeded so that ids, digests,
projects and environments exist and the handlers past the 404s are reached too. Each operation
gets a bounded, derandomized number of examples, in positive and negative generation mode, sent
with an admin token; failures are collected over all operations and reported together.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as st_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pipeline.api import create_app
from pipeline.config import Config, parse_config
from pipeline.intake import PROVIDERS
from pipeline.store import Database, builds, deliveries, projects, promotions, tokens
from tests.gitrepo import GitRepo

MAX_EXAMPLES = 12
SECRET_ENV = "FUZZ_WEBHOOK_SECRET"
DIGESTS = {n: f"sha256:{n * 64}" for n in "abc"}
# every response: no 5xx, a body, status code and content type the OpenAPI document declares
REQUIRED_CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


def _config(tmp_path: Path, repo_url: str) -> Config:
    return parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            # nothing listens there: the API must not need a registry to answer
            "registries": {"local": {"url": "127.0.0.1:9", "insecure": True}},
            "projects": {
                "demo": {
                    "repo": repo_url,
                    "allow_unsigned": True,
                    "webhook_secret_env": SECRET_ENV,
                    "image": {"registry": "local", "repository": "acme/demo"},
                    "environments": [
                        {"name": "dev", "registry": "local", "repository": "acme/dev"},
                        {"name": "staging", "registry": "local", "repository": "acme/st", "requires": "dev"},
                    ],
                }
            },
        }
    )


def _seed(db: Database, config: Config, commit: str) -> dict[str, Any]:
    """Builds in several states with logs, promotions, a hold and a rejection, a few tokens, and
    the admin token the fuzzer sends (made last, so generated ids hit the others first)."""
    now = dt.datetime.now(dt.UTC)
    with db.session() as session:
        projects.sync_projects(session, config.projects)
        ids = []
        for n, (letter, digest) in enumerate(DIGESTS.items()):
            build_id = builds.queue_build(
                session,
                project="demo",
                commit=commit if n == 0 else letter * 40,
                ref="refs/heads/main",
                branch="main",
                trigger="test",
            )
            builds.record_progress(
                session,
                build_id,
                status="succeeded",
                digest=digest,
                image=f"127.0.0.1:9/acme/demo@{digest}",
                started_at=now,
                finished_at=now,
            )
            builds.append_logs(session, build_id, [f"step {i} of build {build_id}" for i in range(3)])
            ids.append(build_id)
        failed = builds.queue_build(
            session, project="demo", commit="d" * 40, ref="refs/heads/main", branch="main", trigger="test"
        )
        builds.record_progress(session, failed, status="failed", error="boom", finished_at=now)
        queued = builds.queue_build(
            session, project="demo", commit="e" * 40, ref="refs/tags/v1", branch=None, trigger="test"
        )
        previous = None
        for build_id, digest in zip(ids[:2], DIGESTS.values(), strict=False):
            row = promotions.add_promotion(
                session,
                project="demo",
                environment="dev",
                digest=digest,
                build_id=build_id,
                status="succeeded",
                actor="seed",
                reason="seed",
                previous_digest=previous,
                started_at=now,
                finished_at=now,
            )
            previous = digest
        promotions.add_promotion(
            session,
            project="demo",
            environment="staging",
            digest=DIGESTS["a"],
            build_id=ids[0],
            status="pending",
            actor="seed",
        )
        promotions.place_hold(session, "demo", "staging", actor="seed", reason="seeded hold", promotion_id=row.id)
        promotions.reject_digest(session, DIGESTS["c"], actor="seed", reason="seeded rejection")
        decoys = [
            tokens.create_token(session, name=f"decoy-{role}", role=role, environments=None, created_by="seed")[0].id
            for role in ("viewer", "builder", "promoter")
        ]
        admin, secret = tokens.create_token(session, name="fuzzer", role="admin", environments=None, created_by="seed")
        admin_id = admin.id
        delivery = deliveries.record(
            session,
            deliveries.DeliveryRecord(
                provider="github",
                delivery_id="seeded-delivery",
                event="push",
                outcome="ignored",
                status_code=200,
                now=now,
                project="demo",
                dedupe_key="github//seeded-delivery",
                body=b"{}",
                headers={"content-type": "application/json", "x-github-event": "push", "x-github-delivery": "seed"},
            ),
        ).delivery_id
    return {
        "builds": ids,
        "failed": failed,
        "queued": queued,
        "decoys": decoys,
        "admin_id": admin_id,
        "secret": secret,
        "delivery": delivery,
    }


@pytest.fixture
def app(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FastAPI, dict[str, Any]]]:
    monkeypatch.setenv(SECRET_ENV, "fuzz-secret")
    repo = GitRepo.create(tmp_path / "git")
    commit = repo.commit({"Dockerfile": "FROM scratch\n"})
    repo.commit({"README": "v1\n"}, branch="release")
    config = _config(tmp_path, repo.url)
    seeded = _seed(db, config, commit)
    application = create_app(config, db)
    yield application, seeded
    # schemathesis keeps an app's lifespan running for the whole process (the PostgreSQL intake
    # pool among it): end it before the database is dropped
    st_asgi.shutdown_lifespans()


def _explain(case: schemathesis.Case, exc: BaseException) -> str:
    return f"{case.operation.label}\n  {case.as_curl_command()}\n  {type(exc).__name__}: {exc}"


def _fuzz(strategy: Any, send: Callable[[Any], None], found: list[str]) -> None:
    """Up to MAX_EXAMPLES derandomized cases; each failure (shrunk) lands in ``found``."""

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: keeps the run short
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=True,
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        send(case)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        pass  # every generated case was filtered out (e.g. only the admin token's own id)
    except BaseExceptionGroup as group:
        found.extend(str(e) for e in group.exceptions)
    except Exception as exc:  # any failure of a case is a finding
        found.append(str(exc))


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(app: tuple[FastAPI, dict[str, Any]]) -> None:
    application, seeded = app
    schema = schemathesis.openapi.from_asgi("/openapi.json", application)
    auth = {"authorization": f"Bearer {seeded['secret']}"}
    admin_id = str(seeded["admin_id"])
    known = {
        "build_id": seeded["builds"][0],
        "promotion_id": 1,
        "token_id": seeded["decoys"][0],
        "project": "demo",
        "environment": "staging",
        "digest": DIGESTS["a"],
        "provider": "github",
        "delivery_id": seeded["delivery"],
    }
    failures: list[str] = []
    timings: list[tuple[float, str]] = []

    def send(case: schemathesis.Case) -> None:
        __tracebackhide__ = True
        try:
            response = case.call(timeout=20)
        except Exception as exc:  # the app raised: a real server would have answered 500
            trace = "".join(traceback.format_exception(exc)[-6:])
            raise AssertionError(f"{_explain(case, exc)}\n  -> 500 (unhandled exception)\n{trace}") from None
        try:
            case.validate_response(response, checks=REQUIRED_CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # reported with the request
            body = response.text[:2000]
            raise AssertionError(f"{_explain(case, exc)}\n  -> {response.status_code}: {body}") from None

    def wanted(case: schemathesis.Case) -> bool:
        # revoking the fuzzer's own token would turn every later request into a 401
        return str((case.path_parameters or {}).get("token_id")) != admin_id

    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        names = {p.name for p in operation.path_parameters}
        query: dict[str, Any] | None = None
        if operation.path.endswith("/logs"):
            query = {"follow": "false"}  # follow=true streams until the build ends: tested below
        # generated path parameters (mostly 404s), then (positive only) ones that exist
        runs: list[tuple[GenerationMode, dict[str, Any], dict[str, Any] | None]] = [
            (GenerationMode.POSITIVE, {}, query),
            (GenerationMode.NEGATIVE, {}, query),
        ]
        if names:
            # a known digest with attestations=true asks the (absent) registry: once, below
            existing_query = {**(query or {}), "attestations": "false"} if "digest" in names else query
            runs.append((GenerationMode.POSITIVE, {n: known[n] for n in names}, existing_query))
        for mode, path_parameters, fixed_query in runs:
            strategy = operation.as_strategy(
                generation_mode=mode, headers=auth, query=fixed_query, path_parameters=path_parameters or None
            )
            started = time.monotonic()
            _fuzz(strategy.filter(wanted), send, failures)
            timings.append((time.monotonic() - started, f"{operation.label} {mode.value} {path_parameters}"))
    assert operations >= 18

    # follow=true on a finished build: the lines, then the end marker, and the stream closes
    logs = schema["/api/v1/builds/{build_id}/logs"]["GET"]
    for build_id in (seeded["builds"][0], seeded["failed"], 999_999):
        case = logs.Case(path_parameters={"build_id": build_id}, query={"follow": "true"}, headers=auth)
        try:
            send(case)
        except AssertionError as exc:
            failures.append(str(exc))

    image = schema["/api/v1/images/{digest}"]["GET"]
    for digest in (DIGESTS["a"], DIGESTS["c"]):
        try:
            send(image.Case(path_parameters={"digest": digest}, query={"attestations": "true"}, headers=auth))
        except AssertionError as exc:
            failures.append(str(exc))

    # webhooks: garbage deliveries to every provider answer 4xx, never 5xx
    webhook = schema["/webhooks/{provider}"]["POST"]
    event_headers = [
        "X-GitHub-Event",
        "X-GitHub-Delivery",
        "X-Hub-Signature-256",
        "X-Gitlab-Event",
        "X-Gitlab-Token",
        "X-Gitlab-Event-UUID",
        "X-Gitea-Event",
        "X-Gitea-Delivery",
        "X-Gitea-Signature",
        "X-Event-Key",
        "X-Hub-Signature",
        "X-Pipeline-Delivery",
        "Content-Type",
    ]
    header_value = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "ref",
                        "after",
                        "before",
                        "repository",
                        "clone_url",
                        "html_url",
                        "commits",
                        "push",
                        "changes",
                        "zen",
                        "object_kind",
                    ]
                )
                | st.text(max_size=8),
                inner,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
    bodies = st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode())
    deliveries = st.builds(
        lambda provider, headers, body: webhook.Case(
            path_parameters={"provider": provider}, headers=headers, body=body, media_type="application/octet-stream"
        ),
        st.sampled_from([*PROVIDERS, "nope"]),
        st.dictionaries(st.sampled_from(event_headers), header_value, max_size=6),
        bodies,
    )
    _fuzz(deliveries, send, failures)

    print("slowest:", ", ".join(f"{label} {took:.1f}s" for took, label in sorted(timings)[-5:]))
    assert not failures, f"{len(failures)} failure(s):\n\n" + "\n\n".join(failures)


_BIG = 2**63  # > INT64 as well as > INT32: overflows both databases' INTEGER
_BIG_CURSOR = "eyJiZWZvcmUiOiA5MjIzMzcyMDM2ODU0Nzc1ODA4fQ"  # {"before": 9223372036854775808}
FOUND_BY_FUZZING = [
    ("GET", f"/api/v1/builds/{_BIG}", None),
    ("GET", f"/api/v1/builds/{_BIG}/logs", None),
    ("GET", f"/api/v1/builds/1/logs?after={_BIG}", None),
    ("POST", f"/api/v1/builds/{_BIG}/cancel", None),
    ("GET", f"/api/v1/promotions/{_BIG}", None),
    ("POST", f"/api/v1/tokens/{_BIG}/revoke", None),
    ("POST", "/api/v1/promotions", {"project": "demo", "environment": "dev", "build_id": _BIG}),
    ("GET", f"/api/v1/builds?cursor={_BIG_CURSOR}", None),
    ("GET", f"/api/v1/promotions?cursor={_BIG_CURSOR}", None),
    ("GET", "/api/v1/builds?since=9999-12-31T23:59:59-23:59", None),
    ("GET", "/api/v1/promotions?until=0001-01-01T00:00:00%2B01:00", None),
]


@pytest.mark.parametrize(
    ("method", "url", "body"),
    FOUND_BY_FUZZING,
    ids=[
        f"{m} {u.split('?')[0]}{'?' + u.split('?')[1][:12] if '?' in u else ''}{' body' if b else ''}"
        for m, u, b in FOUND_BY_FUZZING
    ],
)
def test_what_fuzzing_once_found_stays_a_clear_4xx(
    app: tuple[FastAPI, dict[str, Any]], method: str, url: str, body: dict[str, Any] | None
) -> None:
    """Inputs that were 500s when schemathesis first ran (ids past INT32, cursors holding them,
    times UTC cannot hold): each must stay a 4xx problem."""
    application, seeded = app
    with TestClient(
        application, raise_server_exceptions=False, headers={"Authorization": f"Bearer {seeded['secret']}"}
    ) as client:
        answer = client.request(method, url, json=body)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert answer.headers["content-type"] == "application/problem+json"
