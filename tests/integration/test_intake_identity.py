"""Intake never drops a real push (issue 17): delivery identity per provider, GitLab's system and
project hooks, annotated tags, pings without a repository, Bitbucket Data Center, and the
delivery log (API, /metrics, Redeliver) — through the real app and database, with the commits of
a real Git repository."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from pipeline import intake
from pipeline.config import Config, LiveConfig, parse_config, require_webhook_secrets
from pipeline.doctor import run_checks
from pipeline.errors import ConfigError
from pipeline.store import Build, Database, Delivery, delivery_log, projects, utcnow
from tests import webhooks
from tests.conftest import app_client
from tests.gitrepo import GitRepo, _git

SECRET = "identity-secret"
BB_HOST = "bitbucket.example.com"
REPOS = {
    "github": "https://github.com/acme/gh.git",
    "gitlab": "https://gitlab.example.com/acme/gl.git",
    "gitea": "https://gitea.example.com/acme/gt.git",
    "bitbucket": "git@bitbucket.org:acme/bb.git",
    "bitbucket-server": f"https://{BB_HOST}/scm/proj/bbs.git",
    "generic": "https://git.example.com/acme/gen.git",
}
Sender = Callable[[str, str, str | None], tuple[bytes, dict[str, str]]]


def _config_data() -> dict[str, object]:
    image = {"registry": "r", "repository": "acme/x"}
    return {
        "registries": {"r": {"url": "127.0.0.1:5000"}},
        "projects": {
            name.replace("-", ""): {
                "repo": repo,
                "webhook_secret_env": "IDENTITY_SECRET",
                "image": image,
                "git_tags": ["v*"],
                "branches": ["main", "release/*"],
            }
            for name, repo in REPOS.items()
        },
    }


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("IDENTITY_SECRET", SECRET)
    return parse_config(_config_data())


@pytest.fixture
def client(db: Database, config: Config) -> Iterator[TestClient]:
    yield from app_client(db, config)


@pytest.fixture(scope="module")
def commits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A real repository: X, then A on top; and an annotated tag v1.0 on A (its object and commit)."""
    repo = GitRepo.create(tmp_path_factory.mktemp("identity"))
    x = repo.commit({"Dockerfile": "FROM scratch\n"}, "X")
    a = repo.commit({"app.txt": "A\n"}, "A")
    _git("tag", "-a", "v1.0", "-m", "release 1.0", a, cwd=repo.work)
    _git("push", "--quiet", "origin", "v1.0", cwd=repo.work)
    tag_object = _git("rev-parse", "v1.0", cwd=repo.work)
    assert _git("rev-parse", "v1.0^{commit}", cwd=repo.work) == a and tag_object != a
    # the sequence the hosts report below: main back to X by force, then to A again
    _git("push", "--quiet", "--force", "origin", f"{x}:refs/heads/main", cwd=repo.work)
    _git("push", "--quiet", "--force", "origin", f"{a}:refs/heads/main", cwd=repo.work)
    return {"X": x, "A": a, "tag": tag_object}


def _github(before: str, after: str, delivery_id: str | None) -> tuple[bytes, dict[str, str]]:
    return webhooks.github_delivery(
        webhooks.github_push("acme/gh", REPOS["github"], before=before, after=after), SECRET, delivery_id=delivery_id
    )


def _gitlab(before: str, after: str, delivery_id: str | None) -> tuple[bytes, dict[str, str]]:
    payload = webhooks.gitlab_push("acme/gl", REPOS["gitlab"], before=before, after=after)
    return webhooks.gitlab_delivery(payload, SECRET, uuid_=delivery_id)


def _gitea(before: str, after: str, delivery_id: str | None) -> tuple[bytes, dict[str, str]]:
    payload = webhooks.gitea_push("acme/gt", REPOS["gitea"], before=before, after=after)
    return webhooks.gitea_delivery(payload, SECRET, delivery_id=delivery_id)


def _bitbucket(before: str, after: str, delivery_id: str | None) -> tuple[bytes, dict[str, str]]:
    payload = webhooks.bitbucket_push("acme/bb", [("branch", "main", before, after)])
    return webhooks.bitbucket_delivery(payload, SECRET, request_id=delivery_id)


def _bitbucket_server(before: str, after: str, delivery_id: str | None) -> tuple[bytes, dict[str, str]]:
    payload = webhooks.bitbucket_server_push("PROJ", "bbs", BB_HOST, [("refs/heads/main", before, after)])
    return webhooks.bitbucket_server_delivery(payload, SECRET, request_id=delivery_id)


def _generic(before: str, after: str, delivery_id: str | None) -> tuple[bytes, dict[str, str]]:
    payload = {"repository": REPOS["generic"], "ref": "refs/heads/main", "before": before, "after": after}
    return webhooks.generic_delivery(payload, SECRET, delivery_id=delivery_id)


SENDERS: dict[str, Sender] = {
    "github": _github,
    "gitlab": _gitlab,
    "gitea": _gitea,
    "bitbucket": _bitbucket,
    "bitbucket-server": _bitbucket_server,
    "generic": _generic,
}


def _post(client: TestClient, provider: str, sent: tuple[bytes, dict[str, str]]):  # type: ignore[no-untyped-def]
    return client.post(f"/webhooks/{provider}", content=sent[0], headers=sent[1])


@pytest.mark.parametrize("provider", list(SENDERS))
def test_push_a_back_to_x_and_a_again_builds_a(
    client: TestClient, db: Database, commits: dict[str, str], provider: str
) -> None:
    """Equal bytes with a new delivery id are a new push: the third push is built, not dropped as a
    duplicate (the old unique index on the body's hash answered `200 duplicate` and left the branch on X)."""
    send = SENDERS[provider]
    x, a = commits["X"], commits["A"]
    first = send(x, a, "delivery-1")
    assert _post(client, provider, first).status_code == 202
    assert _post(client, provider, send(a, x, "delivery-2")).status_code == 202
    third = (first[0], {**first[1], **send(x, a, "delivery-3")[1]})
    assert third[0] == first[0]  # the same bytes
    answer = _post(client, provider, third)
    assert answer.status_code == 202, answer.text
    again = _post(client, provider, third)
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    with db.session() as session:
        built = session.scalars(select(Build).order_by(Build.id)).all()
    assert [b.commit for b in built] == [a, x, a]
    # the newest build of the branch, the one whose tags the branch gets, is A's
    assert [b.status for b in built] == ["superseded", "superseded", "queued"]
    assert answer.json()["build_ids"] == [built[-1].id]


def test_gitlab_system_and_project_hook_with_equal_bytes_build_once(
    client: TestClient, db: Database, commits: dict[str, str]
) -> None:
    payload = webhooks.gitlab_push("acme/gl", REPOS["gitlab"], before=commits["X"], after=commits["A"])
    project_hook = webhooks.gitlab_delivery(payload, SECRET, uuid_="event-7")
    system_hook = webhooks.gitlab_system_push(payload, SECRET, uuid_="event-7")
    assert project_hook[0] == system_hook[0]
    first = _post(client, "gitlab", project_hook)
    second = _post(client, "gitlab", system_hook)
    assert first.status_code == 202
    assert second.status_code == 200 and second.json()["outcome"] == "coalesced"
    assert second.json()["build_ids"] == first.json()["build_ids"]
    assert _post(client, "gitlab", system_hook).json()["outcome"] == "duplicate"
    with db.session() as session:
        assert len(session.scalars(select(Build)).all()) == 1
        logged = [(d.hook_id, d.outcome) for d in session.scalars(select(Delivery).order_by(Delivery.id))]
    assert logged == [("project", "queued"), ("system", "coalesced"), ("system", "duplicate")]


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_annotated_tag_builds_the_commit_and_records_the_tag(
    client: TestClient, db: Database, commits: dict[str, str], provider: str
) -> None:
    a, tag_object = commits["A"], commits["tag"]
    if provider == "github":
        payload = webhooks.github_push("acme/gh", REPOS["github"], ref="refs/tags/v1.0", after=tag_object)
        assert payload["head_commit"] is not None
        payload["head_commit"]["id"] = a  # GitHub: after is the tag object, head_commit the commit
        sent = webhooks.github_delivery(payload, SECRET)
    else:
        payload = webhooks.gitlab_push("acme/gl", REPOS["gitlab"], ref="refs/tags/v1.0", after=tag_object)
        payload["checkout_sha"] = a  # GitLab: checkout_sha is the commit the tag points at
        sent = webhooks.gitlab_delivery(payload, SECRET)
    answer = _post(client, provider, sent)
    assert answer.status_code == 202, answer.text
    build = client.get(f"/api/v1/builds/{answer.json()['build_ids'][0]}").json()
    assert (build["commit"], build["ref"], build["tag_object"]) == (a, "refs/tags/v1.0", tag_object)


@pytest.mark.parametrize("kind", ["Organization", "App"])
def test_ping_without_a_repository_is_answered_200(client: TestClient, db: Database, kind: str) -> None:
    body, headers = webhooks.github_delivery(webhooks.github_org_ping(kind), "any org-level secret", event="ping")
    answer = client.post("/webhooks/github", content=body, headers=headers)
    assert answer.status_code == 200 and answer.json()["outcome"] == "pong", answer.text
    assert "names no repository" in answer.json()["reason"]
    with db.session() as session:
        assert [(d.outcome, d.project) for d in session.scalars(select(Delivery))] == [("pong", None)]


def test_bitbucket_server_refs_changed_ping_and_signature(client: TestClient, db: Database) -> None:
    changes = [("refs/heads/main", "1" * 40, "2" * 40), ("refs/tags/v2.0", webhooks.ZERO, "3" * 40)]
    changes.append(("refs/heads/wip", "4" * 40, "5" * 40))  # not a configured branch
    payload = webhooks.bitbucket_server_push("PROJ", "bbs", BB_HOST, changes)
    answer = _post(client, "bitbucket-server", webhooks.bitbucket_server_delivery(payload, SECRET))
    assert answer.status_code == 202 and len(answer.json()["build_ids"]) == 2, answer.text
    assert "'wip'" in answer.json()["reason"]
    ping = webhooks.bitbucket_server_delivery({"test": True}, SECRET, event="diagnostics:ping")
    assert _post(client, "bitbucket-server", ping).json()["outcome"] == "pong"
    forged = webhooks.bitbucket_server_delivery(payload, "not the secret")
    refused = _post(client, "bitbucket-server", forged)
    assert refused.status_code == 401 and "X-Hub-Signature does not match" in refused.json()["detail"]
    with db.session() as session:
        built = session.scalars(select(Build).order_by(Build.id)).all()
    assert [(b.ref, b.commit) for b in built] == [("refs/heads/main", "2" * 40), ("refs/tags/v2.0", "3" * 40)]


def test_refusals_and_duplicates_are_in_the_log_and_the_metrics(client: TestClient, db: Database) -> None:
    pushed = _github("1" * 40, "2" * 40, "log-1")
    assert _post(client, "github", pushed).status_code == 202
    assert _post(client, "github", pushed).json()["outcome"] == "duplicate"
    forged = (pushed[0], {**pushed[1], "X-Hub-Signature-256": "sha256=" + "0" * 64, "X-GitHub-Delivery": "log-2"})
    assert _post(client, "github", forged).status_code == 401
    unknown = webhooks.github_delivery(
        webhooks.github_push("acme/other", "https://github.com/acme/other.git", after="3" * 40), SECRET
    )
    assert _post(client, "github", unknown).status_code == 404
    page = client.get("/api/v1/deliveries", params={"limit": 2}).json()
    assert [d["outcome"] for d in page["items"]] == ["unknown_repository", "bad_signature"]
    rest = client.get("/api/v1/deliveries", params={"cursor": page["next_cursor"]}).json()
    assert [d["outcome"] for d in rest["items"]] == ["duplicate", "queued"] and rest["next_cursor"] is None
    queued = rest["items"][1]
    assert queued["build_ids"] and queued["body_kept"] and queued["status_code"] == 202
    refused = page["items"][1]
    assert (refused["status_code"], refused["delivery_id"], refused["body_kept"]) == (401, "log-2", False)
    assert "0" * 64 not in str(page) and SECRET not in str(page)
    only = client.get("/api/v1/deliveries", params={"outcome": "duplicate", "provider": "github"}).json()["items"]
    assert [d["delivery_id"] for d in only] == ["log-1"]
    assert client.get("/api/v1/deliveries", params={"project": "gitlab"}).json()["items"] == []
    metrics = client.get("/metrics").text
    for outcome in ("queued", "duplicate", "bad_signature", "unknown_repository"):
        assert f'pipeline_webhook_deliveries_total{{outcome="{outcome}",provider="github"}} 1.0' in metrics, outcome


def test_redeliver_runs_intake_again_on_the_stored_body(client: TestClient, db: Database) -> None:
    first = _post(client, "github", _github("1" * 40, "6" * 40, "redeliver-me"))
    build_id = first.json()["build_ids"][0]
    with db.session() as session:
        session.get(Build, build_id).status = "failed"  # type: ignore[union-attr]
        original = session.scalars(select(Delivery)).one().id
    again = client.post(f"/api/v1/deliveries/{original}/redeliver")
    assert again.status_code == 202 and again.json()["outcome"] == "queued", again.text
    new_build = again.json()["build_ids"][0]
    assert new_build != build_id and client.get(f"/api/v1/builds/{new_build}").json()["commit"] == "6" * 40
    logged = client.get("/api/v1/deliveries").json()["items"][0]
    assert (logged["redelivery_of"], logged["delivery_id"], logged["build_ids"]) == (
        original,
        "redeliver-me",
        [new_build],
    )
    body, headers = _github("1" * 40, "7" * 40, None)
    assert _post(client, "github", (body, {**headers, "X-Hub-Signature-256": "sha256=00"})).status_code == 401
    refused_id = client.get("/api/v1/deliveries").json()["items"][0]["id"]
    gone = client.post(f"/api/v1/deliveries/{refused_id}/redeliver")
    assert gone.status_code == 404 and "no stored body" in gone.json()["detail"]
    assert client.post("/api/v1/deliveries/999999/redeliver").status_code == 404


def test_a_body_without_an_id_is_a_duplicate_only_within_the_window(db: Database, config: Config) -> None:
    with db.session() as session:
        projects.sync_projects(session, config.projects)
    body, headers = _generic("1" * 40, "8" * 40, None)
    long_ago = utcnow() - dt.timedelta(seconds=config.intake.dedupe_window + 60)
    old = intake.record(db, intake.decide(config, "generic", headers, body, remote_addr=None, now=long_ago))
    assert old.outcome == "queued"
    with db.session() as session:
        session.get(Build, old.build_ids[0]).status = "succeeded"  # type: ignore[union-attr]
    fresh = intake.receive(db, config, "generic", headers, body)
    assert fresh.outcome == "queued" and fresh.build_ids != old.build_ids
    assert intake.receive(db, config, "generic", headers, body).outcome == "duplicate"


def test_the_log_keeps_bodies_and_rows_only_as_long_as_configured(db: Database, config: Config) -> None:
    with db.session() as session:
        projects.sync_projects(session, config.projects)
    body, headers = _github("1" * 40, "9" * 40, None)
    then = utcnow() - dt.timedelta(days=40)
    intake.record(db, intake.decide(config, "github", headers, body, remote_addr=None, now=then))
    with pytest.raises(Exception):
        intake.record(
            db,
            intake.decide(config, "github", {**headers, "X-Hub-Signature-256": "x"}, body, remote_addr=None, now=then),
        )
    with db.session() as session:
        pruned = delivery_log.prune(session, utcnow(), keep_bodies_days=7, keep_deliveries_days=30)
    assert (pruned.bodies, pruned.rows) == (1, 1)  # the refusal's row; the queued one has a build
    with db.session() as session:
        kept = session.scalars(select(Delivery)).one()
    assert (kept.outcome, kept.body, kept.headers) == ("queued", None, None)


def test_an_unset_webhook_secret_is_refused_at_load(
    tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IDENTITY_SECRET", raising=False)
    data = _config_data()
    with pytest.raises(ConfigError, match="projects.github: environment variable IDENTITY_SECRET"):
        require_webhook_secrets(parse_config(data))
    unsigned = {**data, "projects": {"github": {**data["projects"]["github"], "allow_unsigned": True}}}  # type: ignore[dict-item]
    require_webhook_secrets(parse_config(unsigned))
    checks = {c.component: c for c in run_checks(parse_config(data), db)}
    assert not checks["webhook secret of gitlab"].ok and "IDENTITY_SECRET" in checks["webhook secret of gitlab"].detail
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(unsigned))
    monkeypatch.setenv("IDENTITY_SECRET", SECRET)
    live = LiveConfig(parse_config(unsigned), path)
    path.write_text(yaml.safe_dump(data))
    monkeypatch.delenv("IDENTITY_SECRET")
    with pytest.raises(ConfigError, match="IDENTITY_SECRET"):
        live.reload()
    assert "gitlab" not in live.current.projects  # the running config is kept
    served = subprocess.run(
        [sys.executable, "-m", "pipeline", "serve", "--config", str(path), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
        | {"PIPELINE_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}"},
    )
    assert served.returncode == 2 and "projects.gitlab: environment variable IDENTITY_SECRET" in served.stderr


def test_the_page_shows_recent_deliveries_with_redeliver(client: TestClient, db: Database) -> None:
    good = _post(client, "github", _github("1" * 40, "a" * 40, "page-1"))
    assert good.status_code == 202
    body, headers = _github("1" * 40, "b" * 40, "<script>alert(1)</script>")
    assert _post(client, "github", (body, {**headers, "X-Hub-Signature-256": "sha256=00"})).status_code == 401
    page = client.get("/").text
    fragment = client.get("/ui/fragments/deliveries").text
    assert "Recent deliveries" in page and 'id="deliveries-box"' in page
    for html in (page, fragment):
        assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html  # escaped
        buttons = re.findall(r'data-action="redeliver" data-delivery="(\d+)"', html)
        assert len(buttons) == 1  # only the accepted delivery kept its body
        assert "bad_signature" in html and f'href="/ui/builds/{good.json()["build_ids"][0]}"' in html
    with db.session() as session:
        session.get(Build, good.json()["build_ids"][0]).status = "failed"  # type: ignore[union-attr]
    again = client.post(f"/api/v1/deliveries/{buttons[0]}/redeliver")  # what the button calls
    assert again.status_code == 202 and again.json()["outcome"] == "queued"
