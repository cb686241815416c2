"""The ops commands as a user runs them: the real `pipeline` CLI in a subprocess against the real
API served over HTTP (uvicorn in this process), promotions worked by a real worker, registries
real. Checks output (tables and --output json) and the exit codes scripts rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.api import create_app
from pipeline.config import Config
from pipeline.store import Database, migrate, open_database
from tests.conftest import token_headers
from tests.integration.test_promotion import IMAGES, config, pushed  # noqa: F401  (fixtures)
from tests.seed import serve_with_promoter, succeeded_builds


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'cli.db'}")
    migrate(database)
    yield database
    database.dispose()


@pytest.fixture
def served(
    sqlite: Database, config: Config, pushed: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, dict[str, int]]]:
    """The API on a real port, a promotion worker beside it, and one succeeded build per image."""
    made = succeeded_builds(
        sqlite, config, "demo", [pushed[t] for t in IMAGES], logs=lambda n: [f"building {IMAGES[n]}", "done"]
    )
    token = token_headers(sqlite, "cli-user", "promoter")["Authorization"].removeprefix("Bearer ")
    monkeypatch.setenv("PIPELINE_TOKEN", token)  # what cli() passes on
    with serve_with_promoter(create_app(config, sqlite), sqlite, config, "cli-promoter") as url:
        yield url, dict(zip(IMAGES, made, strict=True))


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIPELINE_URL": url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, env=env, timeout=120
    )


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_promote_wait_envs_rollback_release(served: tuple[str, dict[str, int]], pushed: dict[str, str]) -> None:
    url, ids = served
    first = cli(url, "promote", "demo", "dev", "--build", str(ids["v1"]), "--reason", "first")
    assert first.returncode == 0, first.stderr
    assert "copy-image: succeeded" in first.stderr and "succeeded" in first.stdout
    done = as_json(cli(url, "promote", "demo", "dev", "--digest", pushed["v2"], "-o", "json"))
    assert (done["status"], done["actor"], done["digest"]) == ("succeeded", "cli-user", pushed["v2"])

    matrix = as_json(cli(url, "envs", "-o", "json"))["items"]
    dev = next(e for e in matrix if e["environment"] == "dev")
    assert dev["current"]["digest"] == pushed["v2"] and dev["previous"]["digest"] == pushed["v1"]
    table = cli(url, "envs")
    assert table.returncode == 0 and pushed["v2"][7:19] in table.stdout and "cli-user" in table.stdout

    rolled = as_json(cli(url, "rollback", "demo", "dev", "--reason", "broken", "-o", "json"))
    assert rolled["digest"] == pushed["v1"] and rolled["trigger"] == "rollback"
    held = cli(url, "promote", "demo", "dev", "--build", str(ids["v3"]))
    assert held.returncode == 5 and "dev is held" in held.stderr
    released = cli(url, "release", "demo", "dev")
    assert released.returncode == 0 and "released" in released.stdout
    assert cli(url, "release", "demo", "dev").returncode == 4  # not held any more

    image = cli(url, "images", "show", pushed["v1"])
    assert image.returncode == 0 and "demo/dev" in image.stdout and f"build {ids['v1']}" in image.stdout
    history = as_json(cli(url, "promotions", "ls", "--environment", "dev", "-o", "json"))["items"]
    assert [(p["trigger"], p["status"]) for p in history] == [  # the refused request is history too
        ("manual", "rejected"),
        ("rollback", "succeeded"),
        ("manual", "succeeded"),
        ("manual", "succeeded"),
    ]


def test_policy_refusals_and_bad_input_have_their_exit_codes(served: tuple[str, dict[str, int]]) -> None:
    url, ids = served
    skipped = cli(url, "promote", "demo", "prod", "--build", str(ids["v1"]))
    assert skipped.returncode == 5 and "has not reached staging" in skipped.stderr
    assert cli(url, "promote", "demo", "nowhere", "--build", "1").returncode == 4
    both = cli(url, "promote", "demo", "dev")
    assert both.returncode == 2 and "exactly one of digest or build_id" in both.stderr
    assert cli(url, "images", "show", "sha256:nothex").returncode == 2
    assert cli(url, "envs", "-o", "yaml").returncode == 2
    assert cli("http://127.0.0.1:9", "envs").returncode == 3


def test_builds_list_show_and_logs(served: tuple[str, dict[str, int]]) -> None:
    url, ids = served
    listed = as_json(cli(url, "builds", "ls", "--project", "demo", "-o", "json"))["items"]
    assert [b["id"] for b in listed] == sorted(ids.values(), reverse=True)
    shown = cli(url, "builds", "show", str(ids["v1"]))
    assert shown.returncode == 0 and "1" * 40 in shown.stdout and "succeeded" in shown.stdout
    logs = cli(url, "builds", "logs", str(ids["v2"]))
    assert logs.returncode == 0 and logs.stdout.splitlines() == ["building v2", "done"]
    assert cli(url, "builds", "show", "999").returncode == 4
