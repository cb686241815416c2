"""``pipeline build``, ``rebuild``, ``cancel``, ``logs``, ``--version`` and ``--token`` as a user
runs them: the real CLI in a subprocess (so its output is piped, as a script sees it) against
the real API over HTTP, the project's repository a real Git repository. Text from outside the CLI
(BuildKit's errors, log lines, token names) is full of ``[...]`` and must come out as written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from pipeline.api import create_app
from pipeline.config import Config, parse_config
from pipeline.store import Database, builds, migrate, open_database, projects
from tests import project
from tests.conftest import token_headers
from tests.gitrepo import GitRepo
from tests.seed import serve_with_promoter, succeeded_builds

# What Docker 20.10's BuildKit answers for a failing RUN step, and lines of its log.
ERROR = "executor failed running [/bin/sh -c make test]: exit code: 2"
LOG = ["#6 [build 2/3] RUN make test", "#6 0.41 [/bin/sh -c make test] [bold]FAIL[/bold] [/]", "#6 ERROR: exit code 2"]
ACTOR = "[/ops] release-team"  # a token name (the actor) that is also a closing markup tag
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def app_db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'cli.db'}")
    migrate(database)
    yield database
    database.dispose()


@pytest.fixture
def cfg(tmp_path: Path, git_repo: GitRepo) -> Config:
    return parse_config(
        project.config_data(
            data_dir=tmp_path / "data",
            registry_host="127.0.0.1:9",
            engine_host="unix:///nowhere",
            repo_url=git_repo.url,
        )
    )


@pytest.fixture
def served(app_db: Database, cfg: Config) -> Iterator[tuple[str, str]]:
    """The API on a real port (no build worker: builds stay queued until cancelled); its URL and
    a builder token named ``ACTOR``."""
    with app_db.session() as session:
        projects.sync_projects(session, cfg.projects)
    token = token_headers(app_db, ACTOR, "builder")["Authorization"].removeprefix("Bearer ")
    with serve_with_promoter(create_app(cfg, app_db), app_db, cfg, "cli-builds-promoter") as url:
        yield url, token


def cli(url: str, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_TOKEN"}
    env |= {"PIPELINE_URL": url, "COLUMNS": "40"}  # a narrow terminal: piped output must ignore it
    if token is not None:
        env["PIPELINE_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, env=env, timeout=120
    )


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _failed_build(db: Database, cfg: Config) -> int:
    [build_id] = succeeded_builds(db, cfg, "demo", [DIGEST], logs=lambda _: LOG)
    with db.session() as session:
        builds.record_progress(session, build_id, status="failed", error=ERROR, actor=ACTOR)
    return build_id


def test_failed_build_text_with_brackets_comes_out_as_written(
    served: tuple[str, str], app_db: Database, cfg: Config
) -> None:
    url, token = served
    build_id = _failed_build(app_db, cfg)
    shown = cli(url, "builds", "show", str(build_id), token=token)
    assert shown.returncode == 0, shown.stderr
    assert "MarkupError" not in shown.stderr and ERROR in shown.stdout and ACTOR in shown.stdout
    listed = cli(url, "builds", "ls", token=token)
    [row] = [line for line in listed.stdout.splitlines() if line.lstrip().startswith(str(build_id))]
    assert "1" * 40 in row and DIGEST in row and ACTOR in row and "failed" in row  # one line, nothing cut

    logged = cli(url, "builds", "logs", str(build_id), token=token)
    assert logged.returncode == 0 and logged.stdout.splitlines() == LOG
    followed = cli(url, "logs", str(build_id), "--follow", token=token)
    assert followed.returncode == 1 and followed.stdout.splitlines() == LOG
    assert f"build {build_id} failed" in followed.stderr


def test_a_missing_or_refused_token_says_what_to_do(served: tuple[str, str], app_db: Database, cfg: Config) -> None:
    url, token = served
    build_id = _failed_build(app_db, cfg)
    anonymous = cli(url, "builds", "show", str(build_id))
    assert anonymous.returncode == 6
    assert "set PIPELINE_TOKEN or pass --token" in anonymous.stderr and "Traceback" not in anonymous.stderr
    refused = cli(url, "cancel", str(build_id), "--token", "pipe_not-a-token")
    assert refused.returncode == 6 and "the token in --token was refused" in refused.stderr
    from_env = cli(url, "logs", str(build_id), token="pipe_not-a-token")
    assert from_env.returncode == 6 and "the token in PIPELINE_TOKEN was refused" in from_env.stderr
    by_option = cli(url, "builds", "show", str(build_id), "-o", "json", "--token", token)
    assert as_json(by_option)["error"] == ERROR


def test_build_rebuild_cancel_and_follow(served: tuple[str, str], git_repo: GitRepo) -> None:
    url, token = served
    head = git_repo.commit({"Dockerfile": "FROM scratch\n"}, "first")
    by_ref = as_json(cli(url, "build", "demo", "--ref", "main", "-o", "json", token=token))
    assert (by_ref["status"], by_ref["commit"], by_ref["ref"], by_ref["actor"]) == (
        "queued",
        head,
        "refs/heads/main",
        ACTOR,
    )
    by_commit = cli(url, "build", "demo", "--commit", head, token=token)
    assert by_commit.returncode == 0 and head in by_commit.stdout and "queued" in by_commit.stdout

    again = as_json(cli(url, "rebuild", str(by_ref["id"]), "-o", "json", token=token))
    assert again["id"] > by_ref["id"] and again["commit"] == head
    assert again["actor"] == f"rebuild of {by_ref['id']} by {ACTOR}"

    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_TOKEN"} | {"PIPELINE_URL": url}
    follower = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "logs", str(again["id"]), "-f", "--token", token],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    cancelled = cli(url, "cancel", str(again["id"]), token=token)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout, cancelled.stderr
    _, stderr = follower.communicate(timeout=60)
    assert follower.returncode == 1 and f"build {again['id']} cancelled" in stderr
    assert cli(url, "cancel", str(again["id"]), token=token).returncode == 5  # already ended: 409

    missing = cli(url, "build", "demo", "--ref", "mian", token=token)
    assert missing.returncode == 4 and "mian" in missing.stderr
    both = cli(url, "build", "demo", "--ref", "main", "--commit", head, token=token)
    assert both.returncode == 2 and "exactly one of --ref BRANCH_OR_TAG or --commit SHA" in both.stderr


def test_version() -> None:
    done = cli("http://127.0.0.1:9", "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"pipeline {version('pipeline')}"
