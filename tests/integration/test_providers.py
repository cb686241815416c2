"""Every Git host's push webhook, as the host sends it, through the real app and database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from pipeline.config import Config, parse_config
from pipeline.store import Build, Database, Delivery, jobs
from tests import webhooks
from tests.conftest import app_client

SECRET = "provider-secret"
SHA, SHA2 = "a" * 40, "b" * 40
REPOS = {
    "github": "https://github.com/acme/gh.git",
    "gitlab": "https://gitlab.example.com/acme/gl.git",
    "gitea": "https://gitea.example.com/acme/gt.git",
    "bitbucket": "git@bitbucket.org:acme/bb.git",
    "generic": "https://git.example.com/acme/gen.git",
}


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Config:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    image = {"registry": "r", "repository": "acme/x"}
    projects_ = {
        name: {
            "repo": repo,
            "webhook_secret_env": "HOOK_SECRET",
            "image": image,
            "git_tags": ["v*"],
            "branches": ["main", "release/*"],
        }
        for name, repo in REPOS.items()
    }
    projects_["gitea"] = {**projects_["gitea"], "webhook_secret_env": None, "webhook_secret_file": str(secret_file)}
    projects_["filtered"] = {
        "repo": "https://github.com/acme/filtered.git",
        "webhook_secret_env": "HOOK_SECRET",
        "image": image,
        "paths": {"include": ["src/**", "Dockerfile"], "exclude": ["**/*.md"]},
    }
    projects_["open"] = {"repo": "https://github.com/acme/open.git", "allow_unsigned": True, "image": image}
    return parse_config({"registries": {"r": {"url": "127.0.0.1:5000"}}, "projects": projects_})


@pytest.fixture
def client(db: Database, config: Config) -> Iterator[TestClient]:
    yield from app_client(db, config)


def _gh(secret, after, ref="refs/heads/main", delivery_id=None):  # type: ignore[no-untyped-def]
    return webhooks.github_delivery(
        webhooks.github_push("acme/gh", REPOS["github"], ref=ref, after=after), secret, delivery_id=delivery_id
    )


def _gl(secret, after, ref="refs/heads/main", delivery_id=None):  # type: ignore[no-untyped-def]
    return webhooks.gitlab_delivery(
        webhooks.gitlab_push("acme/gl", REPOS["gitlab"], ref=ref, after=after), secret, idempotency_key=delivery_id
    )


def _gt(secret, after, ref="refs/heads/main", delivery_id=None):  # type: ignore[no-untyped-def]
    return webhooks.gitea_delivery(
        webhooks.gitea_push("acme/gt", REPOS["gitea"], ref=ref, after=after), secret, delivery_id=delivery_id
    )


def _bb(secret, after, ref="refs/heads/main", delivery_id=None):  # type: ignore[no-untyped-def]
    kind = "tag" if ref.startswith("refs/tags/") else "branch"
    name = ref.split("/", 2)[2]
    return webhooks.bitbucket_delivery(
        webhooks.bitbucket_push("acme/bb", [(kind, name, None, after)]), secret, request_id=delivery_id
    )


def _gen(secret, after, ref="refs/heads/main", delivery_id=None):  # type: ignore[no-untyped-def]
    return webhooks.generic_delivery(
        {"repository": "acme/gen", "ref": ref, "after": after}, secret, delivery_id=delivery_id
    )


SENDERS: dict[str, Callable] = {"github": _gh, "gitlab": _gl, "gitea": _gt, "bitbucket": _bb, "generic": _gen}


def _post(client: TestClient, provider: str, body: bytes, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.post(f"/webhooks/{provider}", content=body, headers=headers)


def _builds(db: Database) -> list[Build]:
    with db.session() as session:
        return list(session.scalars(select(Build).order_by(Build.id)))


@pytest.mark.parametrize("provider", list(SENDERS))
def test_each_provider_push_queues_a_build(client: TestClient, db: Database, provider: str) -> None:
    answer = _post(client, provider, *SENDERS[provider](SECRET, SHA, "refs/heads/release/2"))
    assert answer.status_code == 202, answer.text
    assert answer.json()["project"] == provider
    [build] = _builds(db)
    assert (build.project, build.commit, build.branch, build.ref) == (
        provider,
        SHA,
        "release/2",
        "refs/heads/release/2",
    )


@pytest.mark.parametrize("provider", list(SENDERS))
def test_each_provider_tag_push_builds_when_tags_are_configured(
    client: TestClient, db: Database, provider: str
) -> None:
    assert _post(client, provider, *SENDERS[provider](SECRET, SHA, "refs/tags/v1.2.3")).status_code == 202
    ignored = _post(client, provider, *SENDERS[provider](SECRET, SHA2, "refs/tags/nightly"))
    assert ignored.status_code == 200 and "git_tags" in ignored.json()["reason"]
    assert [(b.ref, b.branch) for b in _builds(db)] == [("refs/tags/v1.2.3", None)]


@pytest.mark.parametrize("provider", list(SENDERS))
def test_each_provider_refuses_a_wrong_or_missing_signature(client: TestClient, db: Database, provider: str) -> None:
    for secret in ("wrong-secret", None):
        answer = _post(client, provider, *SENDERS[provider](secret, SHA))
        assert answer.status_code == 401, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
    assert _builds(db) == []


@pytest.mark.parametrize("provider", list(SENDERS))
def test_each_provider_redelivery_is_a_duplicate(client: TestClient, db: Database, provider: str) -> None:
    body, headers = SENDERS[provider](SECRET, SHA, delivery_id="delivery-1")
    assert _post(client, provider, body, headers).status_code == 202
    again = _post(client, provider, body, headers)
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert len(_builds(db)) == 1


def test_gitea_replay_with_a_new_uuid_but_same_body_coalesces(client: TestClient, db: Database) -> None:
    """A new delivery id is a new delivery even with equal bytes (issue 17): it is not dropped,
    and it joins the build of the same commit already queued instead of building it twice."""
    payload = webhooks.gitea_push("acme/gt", REPOS["gitea"], after=SHA)
    first = _post(client, "gitea", *webhooks.gitea_delivery(payload, SECRET))
    assert first.status_code == 202
    replay = _post(client, "gitea", *webhooks.gitea_delivery(payload, SECRET))
    assert replay.json()["outcome"] == "coalesced" and replay.json()["build_ids"] == first.json()["build_ids"]
    assert len(_builds(db)) == 1


def test_gitea_form_mode_is_signed_over_the_inner_json_and_forgejo_headers_work(
    client: TestClient, db: Database
) -> None:
    form = webhooks.gitea_delivery(webhooks.gitea_push("acme/gt", REPOS["gitea"], after=SHA), SECRET, form=True)
    assert _post(client, "gitea", *form).status_code == 202
    body, headers = webhooks.gitea_delivery(
        webhooks.gitea_push("acme/gt", REPOS["gitea"], after=SHA2), SECRET, forgejo=True
    )
    only_forgejo = {k: v for k, v in headers.items() if not k.startswith(("X-Gitea", "X-Gogs"))}
    assert _post(client, "gitea", body, only_forgejo).status_code == 202
    assert [b.commit for b in _builds(db)] == [SHA, SHA2]


def test_gitea_branch_delete_event_and_deleted_tag_push_are_ignored(client: TestClient, db: Database) -> None:
    delete = webhooks.gitea_delivery(
        {
            "ref": "main",
            "ref_type": "branch",
            "repository": webhooks.gitea_push("acme/gt", REPOS["gitea"], after=SHA)["repository"],
        },
        SECRET,
        event="delete",
    )
    assert _post(client, "gitea", *delete).json()["outcome"] == "ignored"
    gone = webhooks.gitea_push("acme/gt", REPOS["gitea"], ref="refs/tags/v1", before=SHA, after=webhooks.ZERO)
    assert "was deleted" in _post(client, "gitea", *webhooks.gitea_delivery(gone, SECRET)).json()["reason"]
    assert _builds(db) == []


def test_bitbucket_push_with_several_changes_queues_each_and_skips_closed(client: TestClient, db: Database) -> None:
    payload = webhooks.bitbucket_push(
        "acme/bb", [("branch", "main", SHA2, SHA), ("tag", "v2.0", None, SHA2), ("branch", "release/9", SHA, None)]
    )
    answer = _post(client, "bitbucket", *webhooks.bitbucket_delivery(payload, SECRET))
    assert answer.status_code == 202 and len(answer.json()["build_ids"]) == 2
    assert [(b.ref, b.commit, b.check_paths) for b in _builds(db)] == [
        ("refs/heads/main", SHA, False),
        ("refs/tags/v2.0", SHA2, False),
    ]
    with db.session() as session:
        delivery = session.scalars(select(Delivery)).one()
        assert "refs/heads/release/9 was deleted" in delivery.reason


def test_gitlab_other_hooks_are_recorded_and_ignored(client: TestClient, db: Database) -> None:
    body, headers = webhooks.gitlab_delivery(
        {"object_kind": "note", "project": {"path_with_namespace": "acme/gl", "git_http_url": REPOS["gitlab"]}},
        SECRET,
        event="Note Hook",
    )
    answer = _post(client, "gitlab", body, headers)
    assert answer.status_code == 200 and "'Note Hook' is not handled" in answer.json()["reason"]
    with db.session() as session:
        assert session.scalars(select(Delivery.outcome)).all() == ["ignored"]


@pytest.mark.parametrize("marker", ["[skip ci]", "[ci skip]", "[SKIP CI]"])
def test_skip_ci_in_the_head_commit_message(client: TestClient, db: Database, marker: str) -> None:
    payload = webhooks.github_push("acme/gh", REPOS["github"], after=SHA, message=f"docs only {marker}")
    answer = _post(client, "github", *webhooks.github_delivery(payload, SECRET))
    assert answer.status_code == 200 and marker in answer.json()["reason"]
    assert _builds(db) == []


def _filtered(files: list[str], after: str, *, total: int | None = None, before: str = SHA2):  # type: ignore[no-untyped-def]
    payload = webhooks.gitlab_push(
        "acme/filtered", "https://github.com/acme/filtered.git", after=after, before=before, files=files, total=total
    )
    return webhooks.gitlab_delivery(payload, SECRET)


def test_path_filters_from_the_payload_and_deferred_when_truncated(client: TestClient, db: Database) -> None:
    assert _post(client, "gitlab", *_filtered(["docs/a.md", "README.md"], "1" * 40)).status_code == 200
    assert _post(client, "gitlab", *_filtered(["src/app/main.py"], "2" * 40)).status_code == 202
    assert _post(client, "gitlab", *_filtered(["src/notes.md"], "3" * 40)).status_code == 200
    assert _post(client, "gitlab", *_filtered(["docs/x.md"], "4" * 40, total=35)).status_code == 202
    assert (
        _post(client, "gitlab", *_filtered(["docs/y.md"], "5" * 40, before=webhooks.ZERO, total=99)).status_code == 202
    )
    assert [(b.commit[0], b.check_paths) for b in _builds(db)] == [("2", False), ("4", True), ("5", False)]


def test_a_new_push_supersedes_queued_builds_of_the_same_branch(client: TestClient, db: Database) -> None:
    _post(client, "github", *_gh(SECRET, "1" * 40))
    _post(client, "github", *_gh(SECRET, "2" * 40, "refs/heads/release/1"))
    _post(client, "github", *_gh(SECRET, "3" * 40))
    builds = {b.commit[0]: b for b in _builds(db)}
    assert builds["1"].status == "superseded" and builds["1"].error == f"superseded by build {builds['3'].id}"
    assert builds["2"].status == "queued" and builds["3"].status == "queued"


def test_unsigned_pushes_only_for_projects_that_allow_them(client: TestClient, db: Database) -> None:
    payload = webhooks.github_push("acme/open", "https://github.com/acme/open.git", after=SHA)
    assert _post(client, "github", *webhooks.github_delivery(payload, None)).status_code == 202
    assert [b.project for b in _builds(db)] == ["open"]


def test_supersede_running_also_takes_the_running_build(db: Database, config: Config) -> None:
    data = config.model_dump(mode="json")
    data["projects"]["github"]["supersede_running"] = True
    eager = parse_config(data)
    for client in app_client(db, eager):
        _post(client, "github", *_gh(SECRET, "1" * 40))
        with db.session(immediate=True) as session:
            running = jobs.claim(session, jobs.BUILDS, "w", dt.timedelta(seconds=60)).id  # type: ignore[union-attr]
        _post(client, "github", *_gh(SECRET, "2" * 40))
    first, second = _builds(db)
    assert first.id == running and first.status == "superseded" and second.status == "queued"
