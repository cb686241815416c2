"""BuildKit features on both real builders (Debian's 20.10 engine and a buildkitd v0.32 daemon)
and a real registry: templated args, targets, tags, cache levels, cache mounts (measured),
.dockerignore, live logs, cancel, timeout, retries; and the image insight shown per build."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from pipeline.api import create_app
from pipeline.config import Config, parse_config
from pipeline.store import Build, Database, builds, migrate, open_database
from tests import project
from tests.conftest import token_headers
from tests.gitrepo import GitRepo, _git
from tests.integration.conftest import BuilderUnderTest, with_builder
from tests.services import DockerEngine, Registry, skopeo_config, skopeo_inspect
from workers.build_worker import BuildWorker


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    database = open_database(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(database)
    return database


def _config(
    tmp_path: Path,
    builder: BuilderUnderTest | DockerEngine,
    registry: Registry,
    repo: GitRepo,
    *,
    project_extra: dict[str, Any] | None = None,
    **build: Any,
) -> Config:
    """The demo project building on ``builder`` (a bare engine: the older ``docker.hosts`` form)."""
    host = builder.host if isinstance(builder, DockerEngine) else "unused"
    data = project.config_data(
        data_dir=tmp_path / "data", registry_host=registry.host, engine_host=host, repo_url=repo.url, **build
    )
    data["projects"]["demo"].update(project_extra or {})
    return parse_config(data if isinstance(builder, DockerEngine) else with_builder(data, builder))


MULTI_STAGE = """FROM {base} AS base
ARG GREETING=unset
ARG BUILT_FROM=unset
LABEL org.example.greeting=$GREETING org.example.built-from=$BUILT_FROM
RUN echo base > /stage
FROM base AS test
RUN echo test > /stage
FROM base AS release
COPY app.txt /app.txt
RUN --mount=type=cache,target=/cache sh -c 'echo x >> /cache/count; wc -l < /cache/count > /builds-seen'
COPY . /src
"""


def test_templated_args_target_semver_tags_and_dockerignore(
    tmp_path: Path,
    builder: BuilderUnderTest,
    engine: DockerEngine,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
) -> None:
    git_repo.commit(
        {
            "Dockerfile": MULTI_STAGE.format(base=base_image),
            ".dockerignore": "secret.env\n",
            "secret.env": "PASSWORD=hunter2\n",
            "app.txt": "app\n",
        }
    )
    _git("tag", "v1.4.2", cwd=git_repo.work)
    _git("push", "--quiet", "origin", "v1.4.2", cwd=git_repo.work)
    sha = _git("rev-parse", "HEAD", cwd=git_repo.work)
    config = _config(
        tmp_path,
        builder,
        registry,
        git_repo,
        target="release",
        args={"GREETING": "hi", "BUILT_FROM": "{tag}@{short_sha}"},
        project_extra={
            "tags": ["{semver}", "{semver_minor}", "{semver_major}", "latest", "{branch}-{short_sha}"],
            "git_tags": ["v*"],
        },
    )
    build = project.run_build(sqlite_db, config, sha, ref="refs/tags/v1.4.2")
    assert build.status == "succeeded", build.error
    assert build.tags == ["1.4.2", "1.4", "1"], "no latest (not the default branch) and no {branch} for a tag"
    assert build.build_args == {"GREETING": "hi", "BUILT_FROM": f"v1.4.2@{sha[:7]}"}
    image = f"{registry.host}/acme/demo"
    labels = skopeo_config(f"{image}@{build.digest}", tls_verify=False)["config"]["Labels"]
    assert labels["org.example.built-from"] == f"v1.4.2@{sha[:7]}"
    assert labels["org.opencontainers.image.version"] == "1.4.2"
    assert labels["org.opencontainers.image.ref.name"] == "v1.4.2"
    files = (
        engine.docker("run", "--rm", "--network", "host", f"{image}@{build.digest}", "sh", "-c", "cat /stage; ls /src")
        .stdout.decode()
        .split()
    )
    assert files[0] == "base", "the release target must not contain the test stage"
    assert "app.txt" in files and "secret.env" not in files, ".dockerignore must be honoured"
    for tag in build.tags:
        assert skopeo_inspect(f"{image}:{tag}", tls_verify=False)["Digest"] == build.digest
    assert build.layers and build.image_size == sum(layer["size"] for layer in build.layers)

    main = project.run_build(sqlite_db, config, sha)
    assert main.status == "succeeded" and main.tags == ["latest", f"main-{sha[:7]}"]
    feature = project.run_build(sqlite_db, config, sha, ref="refs/heads/feature/x")
    assert feature.tags == [f"feature-x-{sha[:7]}"], "latest only for the default branch"
    work = config.data_dir / "work"
    assert not any(work.iterdir()), "every build removes its work directory (the checkout) when it ends"


def test_second_build_uses_the_cache_and_cache_mounts_persist(
    tmp_path: Path,
    builder: BuilderUnderTest,
    engine: DockerEngine,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
) -> None:
    first_sha = git_repo.commit({"Dockerfile": MULTI_STAGE.format(base=base_image), "app.txt": "one\n"})
    config = _config(tmp_path, builder, registry, git_repo, target="release")
    first = project.run_build(sqlite_db, config, first_sha)
    second_sha = git_repo.commit({"app.txt": "two\n"})
    second = project.run_build(sqlite_db, config, second_sha)
    assert first.status == second.status == "succeeded", (first.error, second.error)
    assert second.steps_cached >= 1 and second.steps_total == first.steps_total >= 4
    assert second.cache_from == [first.image]
    seen = lambda b: int(  # noqa: E731
        engine.docker(
            "run",
            "--rm",
            "--network",
            "host",
            b.image,
            "cat",
            "/builds-seen",
        ).stdout.decode()
    )
    assert seen(second) > seen(first), "the RUN --mount=type=cache directory must persist between builds"
    assert second.insight["compared"]["size_delta"] is not None


def _step_seconds(log: str, marker: str) -> float:
    """How long BuildKit says the step whose title contains ``marker`` took (its ``#N DONE x.ys``)."""
    vertex = next(line.split()[0] for line in log.splitlines() if line.startswith("#") and marker in line)
    done = [line for line in log.splitlines() if line.startswith(f"{vertex} DONE ")]
    assert done, f"step {vertex} ({marker}) never finished:\n{log[-3000:]}"
    return float(done[-1].split()[-1].rstrip("s"))


def test_a_step_that_fills_a_cache_mount_is_faster_the_second_time(
    tmp_path: Path,
    builder: BuilderUnderTest,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
) -> None:
    """The step runs both times (a build-arg changes), but finds its cache mount already filled."""
    dockerfile = (
        f"FROM {base_image}\nARG ROUND\n"
        f"RUN --mount=type=cache,id=fill-{tmp_path.name},target=/cache "
        "sh -c 'test -f /cache/filled || (sleep 3 && echo x > /cache/filled); echo round $ROUND'\n"
    )
    sha = git_repo.commit({"Dockerfile": dockerfile})
    timings = []
    for round_ in ("1", "2"):
        config = _config(tmp_path, builder, registry, git_repo, args={"ROUND": round_})
        build = project.run_build(sqlite_db, config, sha)
        assert build.status == "succeeded", build.error
        log = project.build_log(sqlite_db, build.id)
        assert f"round {round_}" in log, "the step ran (it was not taken from the layer cache)"
        timings.append(_step_seconds(log, "--mount=type=cache"))
    assert timings[0] >= 3 and timings[1] < timings[0] - 2, timings


def test_fresh_engine_reuses_layers_through_cache_from(
    tmp_path: Path,
    engine: DockerEngine,
    second_engine: DockerEngine,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
) -> None:
    dockerfile = f"FROM {base_image}\nRUN echo expensive-step-{tmp_path.name} > /out && sleep 1\nCOPY a.txt /a\n"
    first_sha = git_repo.commit({"Dockerfile": dockerfile, "a.txt": "1\n"})
    first = project.run_build(sqlite_db, _config(tmp_path, engine, registry, git_repo), first_sha)
    assert first.status == "succeeded", first.error
    second_sha = git_repo.commit({"a.txt": "2\n"})
    fresh = _config(tmp_path, second_engine, registry, git_repo)
    second = project.run_build(sqlite_db, fresh, second_sha)
    assert second.status == "succeeded", second.error
    assert second.engine == second_engine.host and second.cache_from == [first.image]
    log = project.build_log(sqlite_db, second.id)
    assert "RUN echo expensive-step" in log and second.steps_cached >= 1, log[-2000:]


def test_insight_and_advice_are_recorded_and_shown_by_the_api(
    tmp_path: Path,
    builder: BuilderUnderTest,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
) -> None:
    """On an engine the image is read with `docker save`; from a BuildKit daemon, back from the registry."""
    dockerfile = (
        f"FROM {base_image}\nRUN dd if=/dev/zero of=/big bs=1024 count=64 2>/dev/null\nRUN rm /big\nUSER root\n"
    )
    sha = git_repo.commit({"Dockerfile": dockerfile})
    config = _config(tmp_path, builder, registry, git_repo)
    build = project.run_build(sqlite_db, config, sha)
    assert build.status == "succeeded", build.error
    with TestClient(create_app(config, sqlite_db), headers=token_headers(sqlite_db)) as client:
        shown = client.get(f"/api/v1/builds/{build.id}").json()
        page = client.get(f"/ui/fragments/build/{build.id}").text
    assert shown["insight"]["wasted_bytes"] >= 65536
    # the build page reads the real BuildKit progress back from the log: both RUN steps, timed
    steps = re.findall(
        r'<tr class="step step-(\w+)" data-cached="(\w+)"><th scope="row">([^<]+)</th><td><code>([^<]+)', page
    )
    runs = [s for s in steps if s[3].startswith("RUN ")]
    assert [s[3] for s in runs] == ["RUN dd if=/dev/zero of=/big bs=1024 count=64 2&gt;/dev/null", "RUN rm /big"], steps
    assert all(s[0] in ("done", "cached") for s in runs) and "insight" in shown["timings"], shown["timings"]
    assert 'class="instruction">RUN /bin/sh -c rm /big' in page or "rm /big" in page.split('id="layers"')[1]
    assert "DL3002" in page and "/big" in page.split('id="wasted"')[1]
    assert any(f["path"] == "/big" for f in shown["insight"]["wasted_files"])
    codes = {a["code"] for a in shown["advice"]}
    assert "DL3002" in codes and "PL004" in codes, shown["advice"]  # hadolint reports the last USER root


def _slow(base_image: str) -> str:
    return f"FROM {base_image}\nRUN echo started-slow-step && sleep 60\n"


def test_cancel_through_the_api_stops_the_running_build(
    tmp_path: Path,
    builder: BuilderUnderTest,
    engine: DockerEngine,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
) -> None:
    sha = git_repo.commit({"Dockerfile": _slow(base_image)})
    config = _config(tmp_path, builder, registry, git_repo)
    build_id = project.queue_build(sqlite_db, config, sha)
    worker = BuildWorker(sqlite_db, config, name="w")
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    with TestClient(create_app(config, sqlite_db), headers=token_headers(sqlite_db)) as client:
        for _ in range(300):  # the slow step has started once its output reaches the log
            if "started-slow-step" in project.build_log(sqlite_db, build_id) or not thread.is_alive():
                break
            time.sleep(0.2)
        assert "started-slow-step" in project.build_log(sqlite_db, build_id)
        answer = client.post(f"/api/v1/builds/{build_id}/cancel")
        assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
        thread.join(timeout=30)  # the step sleeps 60 s: ending now means the build was stopped
        assert not thread.is_alive(), "the build process was not stopped"
        again = client.post(f"/api/v1/builds/{build_id}/cancel")
        assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    with sqlite_db.session() as session:
        assert builds.get_build(session, build_id).status == "cancelled"


def test_timeout_fails_the_build_once(
    tmp_path: Path,
    builder: BuilderUnderTest,
    engine: DockerEngine,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
) -> None:
    sha = git_repo.commit({"Dockerfile": _slow(base_image)})
    build = project.run_build(sqlite_db, _config(tmp_path, builder, registry, git_repo, timeout_seconds=3), sha)
    assert build.status == "failed" and "exceeded its timeout of 3 s" in build.error and build.attempts == 1
    assert not (tmp_path / "data" / "work" / f"build-{build.id}").exists(), "a failed build leaves no work directory"


def test_registry_refusing_the_push_is_retried_with_backoff(
    tmp_path: Path, builder: BuilderUnderTest, base_image: str, git_repo: GitRepo, sqlite_db: Database
) -> None:
    flaky = Registry(tmp_path / "flaky-registry")
    sha = git_repo.commit({"Dockerfile": f"FROM {base_image}\nRUN echo retry > /r\n"})
    config = _config(tmp_path, builder, flaky, git_repo)
    first = project.run_build(sqlite_db, config, sha)  # the registry is not running yet
    assert first.status == "queued" and first.attempts == 1 and "will retry" in first.error
    assert first.not_before > dt.datetime.now(dt.UTC)
    flaky.start()
    try:
        with sqlite_db.session() as session:  # skip the wait, keep the order of events
            session.execute(update(Build).where(Build.id == first.id).values(not_before=None))
        assert BuildWorker(sqlite_db, config, name="w2").run_once()
        with sqlite_db.session() as session:
            done = builds.get_build(session, first.id)
            lines = [row.line for row in builds.read_logs(session, first.id)]
        assert done.status == "succeeded" and done.attempts == 2, done.error
        # the log says where the second attempt begins and why there is one
        [marker] = [line for line in lines if line.startswith("— attempt ")]
        assert marker == f"— attempt 2 of 3 after: {first.error.removeprefix('will retry: ')} —"
        assert 0 < lines.index(marker) < len(lines) - 1
        # seconds per step: the failed attempt kept the steps it reached, the retry has them all
        assert {"queue", "checkout", "build"} <= set(first.timings) and "record" not in first.timings
        assert list(done.timings)[:7] == ["queue", "resolve", "reuse", "checkout", "build", "push", "record"], (
            done.timings
        )
        assert all(isinstance(v, float) and v >= 0 for v in done.timings.values())
        assert done.timings["queue"] >= (done.started_at - done.created_at).total_seconds() - 0.01
        assert skopeo_inspect(f"{flaky.host}/acme/demo@{done.digest}", tls_verify=False)["Digest"] == done.digest
    finally:
        flaky.stop()
