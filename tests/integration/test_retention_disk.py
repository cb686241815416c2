"""Retention of the service's own disk on SQLite and PostgreSQL: old build logs archived (gzip,
readable) or deleted with a line saying so, Git mirrors collected by ``git gc``, the data
directory's size on ``/metrics``, and the retention duty planned by ``cleanup.schedule``.
(That a build removes its work directory is checked in test_build_features.)"""

from __future__ import annotations

import datetime as dt
import gzip
import os
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from pipeline import cleanup
from pipeline.config import Config, LogRetention, parse_config
from pipeline.errors import ConfigError
from pipeline.git import run_git
from pipeline.source import update_mirror
from pipeline.store import BuildLog, Database, builds, projects, retention
from tests.buildkit_service import BuildkitDaemon
from tests.conftest import app_client
from tests.gitrepo import GitRepo
from tests.integration.conftest import buildkit_entry
from tests.seed import succeeded_builds
from tests.services import TOOLS_BIN, DockerEngine
from workers.scheduler import start_scheduler


def _config(tmp_path: Path, repo: GitRepo, **top: Any) -> Config:
    return parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            "registries": {"local": {"url": "127.0.0.1:5000", "insecure": True}},
            "projects": {
                "demo": {"repo": repo.url, "image": {"registry": "local", "repository": "acme/demo"}},
            },
            **top,
        }
    )


def _age_logs(db: Database, build_id: int, days: int) -> None:
    with db.session() as session:  # as if written long ago
        when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        session.execute(update(BuildLog).where(BuildLog.build_id == build_id).values(created_at=when))


@pytest.mark.parametrize("action", ["archive", "delete"])
def test_old_build_logs_go_and_a_line_says_where(db: Database, git_repo: GitRepo, tmp_path: Path, action: str) -> None:
    config = _config(tmp_path, git_repo)
    old, recent = succeeded_builds(
        db, config, "demo", ["sha256:" + "1" * 64, "sha256:" + "2" * 64], logs=lambda n: [f"step {n}", "done é"]
    )
    _age_logs(db, old, 100)
    done = cleanup.retain_logs(db, config, LogRetention(keep_days=90, action=action))  # type: ignore[arg-type]
    assert (done.builds, done.lines) == (1, 2)
    with db.session() as session:
        kept = [line.line for line in builds.read_logs(session, old)]
        assert [line.line for line in builds.read_logs(session, recent)] == ["step 1", "done é"]
        assert builds.get_build(session, old).status == "succeeded", "the build row stays"
    assert len(kept) == 1 and kept[0].startswith(retention.RETENTION_MARK)
    archive = config.data_dir / "logs" / f"build-{old}.log.gz"
    if action == "archive":
        assert str(archive) in kept[0]
        assert gzip.decompress(archive.read_bytes()).decode() == "step 0\ndone é\n"
    else:
        assert "deleted" in kept[0] and not archive.exists()
    _age_logs(db, old, 100)
    assert cleanup.retain_logs(db, config, LogRetention(keep_days=90)).builds == 0, "the mark is not retained again"


def test_bad_retention_config_names_the_key(git_repo: GitRepo, tmp_path: Path) -> None:
    for bad, key in (
        ({"cleanup": {"schedule": "daily"}}, "cleanup.schedule"),
        ({"cleanup": {"logs": {"action": "shred"}}}, "cleanup.logs.action"),
        ({"cleanup": {"prune": {"buildkit_keep_storage": "lots"}}}, "cleanup.prune.buildkit_keep_storage"),
        ({"cleanup": {"registry": {"keep_commit": 3}}}, "cleanup.registry.keep_commit: unknown key"),
        ({"cleanup": {"registry": {"keep_promotions": 0}}}, "cleanup.registry.keep_promotions"),
        ({"cleanup": {"registry": {"environments": ["prod"]}}}, "cleanup.registry.environments: unknown key"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            _config(tmp_path, git_repo, **bad)


def test_mirrors_are_collected_and_the_data_dir_is_measured(db: Database, git_repo: GitRepo, tmp_path: Path) -> None:
    config = _config(tmp_path, git_repo, cleanup={"schedule": "1d"})
    for n in range(3):
        git_repo.commit({"f.txt": str(n)}, f"change {n}")
    mirror = update_mirror(config.data_dir, "demo", config.projects["demo"])
    run_git("--git-dir", str(mirror), "repack", "-q")  # a pack, and then loose objects beside it
    git_repo.commit({"f.txt": "loose"}, "loose")
    update_mirror(config.data_dir, "demo", config.projects["demo"])
    before = run_git("--git-dir", str(mirror), "count-objects", "-v")
    assert cleanup.gc_mirrors(config) == ["demo"]
    after = dict(line.split(": ") for line in run_git("--git-dir", str(mirror), "count-objects", "-v").splitlines())
    assert after["count"] == "0" and after["packs"] == "1", (before, after)

    with db.session() as session:
        projects.sync_projects(session, config.projects)
    clients = app_client(db, config)
    text = next(clients).get("/metrics").text
    clients.close()
    sizes = {
        s.labels["part"]: s.value
        for family in text_string_to_metric_families(text)
        if family.name == "pipeline_data_dir_bytes"
        for s in family.samples
    }
    assert sizes["mirrors"] > 0 and sizes["total"] >= sizes["mirrors"] + sizes["work"]

    scheduler = start_scheduler(db, config)
    try:
        job = scheduler.get_job("cleanup")
        assert job is not None and job.trigger.interval.total_seconds() == 86400
    finally:
        scheduler.shutdown(wait=False)
    scheduler = start_scheduler(db, _config(tmp_path, git_repo))
    try:
        assert scheduler.get_job("cleanup") is None, "no schedule, no duty"
    finally:
        scheduler.shutdown(wait=False)


def test_builder_caches_are_pruned_when_configured(
    engine: DockerEngine, buildkitd: BuildkitDaemon, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The tests' own engine and BuildKit daemon, as builders the service owns: both prune
    commands run and succeed; with no ``prune`` set nothing runs at all."""
    monkeypatch.setenv("PATH", f"{TOOLS_BIN}:{os.environ['PATH']}")  # buildctl, as the image ships it
    data: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "builders": [{"name": "engine", "docker": engine.host}, buildkit_entry("bk", buildkitd)],
    }
    assert cleanup.prune_builders(parse_config(data)) == []
    pruning = {"prune": {"docker_images_older_than": "240h", "buildkit_keep_storage": "20gb"}}
    said = cleanup.prune_builders(parse_config({**data, "cleanup": pruning}))
    assert [line.split(":")[0] for line in said] == ["builder engine", "builder bk"]
    assert not [line for line in said if ": failed" in line or "No such file" in line], said
