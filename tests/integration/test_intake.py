"""GitHub webhooks through the real app and database: what is queued, what is refused, and why."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pipeline.config import Config, parse_config
from pipeline.intake import MAX_BODY_BYTES, receive
from pipeline.store import Build, Database, Delivery, projects
from tests import webhooks
from tests.conftest import app_client

SECRET = "It's a Secret to Everybody"
REPO = "https://github.com/acme/app.git"
SHA = "1" * 40


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("APP_HOOK_SECRET", SECRET)
    return parse_config(
        {
            "registries": {"local": {"url": "127.0.0.1:5000", "insecure": True}},
            "projects": {
                "app": {
                    "repo": REPO,
                    "webhook_secret_env": "APP_HOOK_SECRET",
                    "branches": ["main", "release/*"],
                    "image": {"registry": "local", "repository": "acme/app"},
                },
                "nosecret": {
                    "repo": "https://github.com/acme/nosecret.git",
                    "webhook_secret_env": "UNSET_SECRET_VAR",
                    "image": {"registry": "local", "repository": "acme/nosecret"},
                },
            },
        }
    )


@pytest.fixture
def client(db: Database, config: Config) -> Iterator[TestClient]:
    yield from app_client(db, config)


def _count(db: Database, table: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def _post(client: TestClient, payload: dict, secret: str | None = SECRET, **kwargs: object):  # type: ignore[no-untyped-def]
    body, headers = webhooks.github_delivery(payload, secret, **kwargs)  # type: ignore[arg-type]
    return client.post("/webhooks/github", content=body, headers=headers)


def test_push_to_configured_branch_queues_one_build(client: TestClient, db: Database) -> None:
    answer = _post(client, webhooks.github_push("acme/app", REPO, after=SHA, ref="refs/heads/release/1.2"))
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["outcome"] == "queued" and body["project"] == "app" and len(body["build_ids"]) == 1
    build = client.get(f"/api/v1/builds/{body['build_ids'][0]}").json()
    assert (build["status"], build["commit"], build["branch"], build["digest"]) == ("queued", SHA, "release/1.2", None)
    with db.session() as session:
        delivery = session.scalars(select(Delivery)).one()
        assert (delivery.outcome, delivery.after) == ("queued", SHA)
        assert session.scalars(select(Build.id).where(Build.delivery_id == delivery.id)).all() == body["build_ids"]


def test_form_encoded_body_is_verified_over_the_form_bytes(client: TestClient, db: Database) -> None:
    answer = _post(client, webhooks.github_push("acme/app", REPO, after=SHA), form=True)
    assert answer.status_code == 202, answer.text
    assert _count(db, Build) == 1


def test_ping_answers_pong_and_queues_nothing(client: TestClient, db: Database) -> None:
    answer = _post(client, webhooks.github_ping("acme/app", REPO), event="ping")
    assert answer.status_code == 200 and answer.json()["outcome"] == "pong"
    assert _count(db, Build) == 0


def test_redelivery_is_a_duplicate(client: TestClient, db: Database) -> None:
    payload = webhooks.github_push("acme/app", REPO, after=SHA)
    first = _post(client, payload, delivery_id="d-1")
    again = _post(client, payload, delivery_id="d-1")
    assert first.status_code == 202
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert _count(db, Build) == 1


@pytest.mark.parametrize(
    ("ref", "after", "reason"),
    [
        ("refs/heads/feature/x", SHA, "does not match the project's branches"),
        ("refs/heads/main", webhooks.ZERO, "was deleted"),
        ("refs/tags/v1.0.0", SHA, "does not match the project's git_tags"),
    ],
)
def test_pushes_not_to_build_are_ignored_with_a_recorded_reason(
    client: TestClient, db: Database, ref: str, after: str, reason: str
) -> None:
    answer = _post(client, webhooks.github_push("acme/app", REPO, ref=ref, after=after))
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "ignored" and reason in answer.json()["reason"]
    assert _count(db, Build) == 0
    with db.session() as session:
        delivery = session.scalars(select(Delivery)).one()
        assert delivery.outcome == "ignored" and reason in delivery.reason


def _problem(answer, status: int, words: str) -> None:  # type: ignore[no-untyped-def]
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["status"] == status and words in problem["detail"], problem


def test_wrong_signature_is_401_and_queues_nothing(client: TestClient, db: Database) -> None:
    payload = webhooks.github_push("acme/app", REPO, after=SHA)
    _problem(_post(client, payload, secret="not the secret"), 401, "does not match")
    _problem(_post(client, payload, secret=None), 401, "missing signature header X-Hub-Signature-256")
    _problem(_post(client, payload, signature="sha1=abc"), 401, "does not match")
    assert _count(db, Build) == 0
    with db.session() as session:
        logged = session.scalars(select(Delivery).order_by(Delivery.id)).all()
    # each refusal is logged, without the signature or the body
    assert [(d.outcome, d.status_code, d.project, d.body) for d in logged] == [("bad_signature", 401, "app", None)] * 3
    assert all("sha1=abc" not in repr(vars(d)) and SECRET not in repr(vars(d)) for d in logged)


def test_signature_over_a_tampered_body_fails(client: TestClient, db: Database) -> None:
    body, headers = webhooks.github_delivery(webhooks.github_push("acme/app", REPO, after=SHA), SECRET)
    tampered = body.replace(SHA.encode(), ("2" * 40).encode())
    _problem(client.post("/webhooks/github", content=tampered, headers=headers), 401, "does not match")
    assert _count(db, Build) == 0


def test_project_without_a_secret_refuses_pushes(client: TestClient, db: Database) -> None:
    payload = webhooks.github_push("acme/nosecret", "https://github.com/acme/nosecret.git", after=SHA)
    _problem(_post(client, payload), 401, "no webhook secret configured")
    assert _count(db, Build) == 0


def test_unknown_repository_is_404(client: TestClient, db: Database) -> None:
    payload = webhooks.github_push("acme/other", "https://github.com/acme/other.git", after=SHA)
    _problem(_post(client, payload), 404, "'acme/other' matches no configured project")
    with db.session() as session:
        logged = session.scalars(select(Delivery)).one()
    assert (logged.outcome, logged.status_code, logged.project, logged.repository) == (
        "unknown_repository",
        404,
        None,
        "acme/other",
    )


def test_malformed_bodies_are_400(client: TestClient, db: Database) -> None:
    headers = webhooks.github_delivery({}, SECRET)[1]
    _problem(client.post("/webhooks/github", content=b"{not json", headers=headers), 400, "not valid JSON")
    _problem(client.post("/webhooks/github", content=b"[1, 2]", headers=headers), 400, "JSON object")
    bad_sha = webhooks.github_push("acme/app", REPO, after="nothex")
    _problem(_post(client, bad_sha), 400, "after must be a 40-character hex commit SHA")
    bad_ref = webhooks.github_push("acme/app", REPO, after=SHA, ref="refs/heads/../../etc")
    _problem(_post(client, bad_ref), 400, "ref must be a valid branch or tag ref")
    no_event = {k: v for k, v in headers.items() if k != "X-GitHub-Event"}
    _problem(client.post("/webhooks/github", content=b"{}", headers=no_event), 400, "missing header X-GitHub-Event")
    assert _count(db, Build) == 0


def test_wrong_content_type_is_415_and_oversized_is_413(client: TestClient) -> None:
    body, headers = webhooks.github_delivery(webhooks.github_push("acme/app", REPO, after=SHA), SECRET)
    _problem(
        client.post("/webhooks/github", content=body, headers={**headers, "Content-Type": "text/plain"}),
        415,
        "'text/plain'",
    )
    huge = json.dumps({"pad": "x" * (MAX_BODY_BYTES + 1)}).encode()
    _problem(client.post("/webhooks/github", content=huge, headers=headers), 413, "limit")


def test_unknown_provider_is_404(client: TestClient) -> None:
    _problem(client.post("/webhooks/svn", content=b"{}"), 404, "unknown webhook provider 'svn'")


def test_accepted_pushes_survive_later_bad_ones(client: TestClient, db: Database) -> None:
    good = _post(client, webhooks.github_push("acme/app", REPO, after=SHA))
    assert good.status_code == 202
    _post(client, webhooks.github_push("acme/app", REPO, after="3" * 40), secret="wrong")
    client.post("/webhooks/github", content=b"{", headers=webhooks.github_delivery({}, SECRET)[1])
    builds = client.get("/api/v1/builds").json()["items"]
    assert [b["commit"] for b in builds] == [SHA]


HOSTILE_REFS = [
    "--upload-pack=touch /tmp/pwned",
    "refs/heads/--upload-pack=x",
    "refs/heads/main;rm -rf /",
    "refs/heads/$(reboot)",
    "refs/heads/`id`",
    "refs/heads/../../x",
    "refs/heads/a/../../etc/passwd",
    "refs/heads/" + "x" * 300,
    "refs/heads/main\nrefs/heads/evil",
    "refs/heads/.hidden",
    "refs/heads/main.lock",
    "refs/remotes/origin/main",
    "main",
]


@pytest.mark.parametrize("ref", HOSTILE_REFS)
def test_hostile_refs_are_refused_before_anything_runs(client: TestClient, db: Database, ref: str) -> None:
    answer = _post(client, webhooks.github_push("acme/app", REPO, after=SHA, ref=ref))
    _problem(answer, 400, "ref must be a valid branch or tag ref")
    assert _count(db, Build) == 0
    with db.session() as session:
        assert [(d.outcome, d.body) for d in session.scalars(select(Delivery))] == [("malformed", None)]


@pytest.mark.parametrize("after", ["--upload-pack=x", "HEAD", "1" * 39, "G" * 40, "1" * 41, "", None, 12])
def test_hostile_shas_are_refused(client: TestClient, db: Database, after: object) -> None:
    payload = webhooks.github_push("acme/app", REPO, after=SHA)
    payload["after"] = after
    _problem(_post(client, payload), 400, "after must be a 40-character hex commit SHA")
    assert _count(db, Build) == 0


def test_non_utf8_bytes_are_a_clear_400(client: TestClient, db: Database) -> None:
    body = b'{"ref": "refs/heads/\xff\xfe", "after": "' + SHA.encode() + b'"}'
    headers = webhooks.github_delivery({}, SECRET)[1]
    headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    _problem(client.post("/webhooks/github", content=body, headers=headers), 400, "not valid UTF-8")
    assert _count(db, Build) == 0


def test_payload_urls_never_choose_what_is_cloned(client: TestClient, db: Database) -> None:
    """The payload names acme/app but points its URLs at another host: the project is found by
    its path, and the build records nothing from the payload's URLs (the worker clones the
    configured repo only)."""
    payload = webhooks.github_push(
        "acme/app", "https://evil.example.com/acme/app.git", after=SHA, host="evil.example.com"
    )
    assert _post(client, payload).status_code == 202
    with db.session() as session:
        build = session.scalars(select(Build)).one()
        delivery = session.scalars(select(Delivery)).one()
    # the body itself is kept (for Redeliver) and names the URLs, but no column read from it does
    stored = " ".join(str(v) for k, v in (*vars(build).items(), *vars(delivery).items()) if k != "body")
    assert "evil.example.com" not in stored
    assert delivery.repository == "acme/app"


def test_a_burst_of_the_same_delivery_queues_exactly_one_build(db: Database, config: Config) -> None:
    with db.session() as session:
        projects.sync_projects(session, config.projects)
    body, headers = webhooks.github_delivery(webhooks.github_push("acme/app", REPO, after=SHA), SECRET)
    outcomes: list[str] = []

    def send() -> None:
        outcomes.append(receive(db, config, "github", headers, body).outcome)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["duplicate"] * 7 + ["queued"]
    assert _count(db, Build) == 1
    with db.session() as session:
        logged = sorted(session.scalars(select(Delivery.outcome)))
    assert logged == ["duplicate"] * 7 + ["queued"]  # every copy is logged, one is the delivery
