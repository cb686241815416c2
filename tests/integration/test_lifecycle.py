"""One job lifecycle, fencing and instant pickup, on SQLite and PostgreSQL with a real registry:
a stale claim touches nothing, a tag moved behind the service's back is left alone, a bug ends
its job as failed with the traceback in the log, and an idle worker starts new work at once."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.engine import make_url

from pipeline import build as build_stage
from pipeline import promotion
from pipeline.claims import ClaimScope
from pipeline.config import Config, parse_config
from pipeline.errors import LeaseLost
from pipeline.registry import Manifest, RegistryClient, copy_image
from pipeline.store import (
    Build,
    Database,
    Promotion,
    builds,
    jobs,
    locks,
    migrate,
    open_database,
    projects,
    promotions,
)
from tests import project
from tests.gitrepo import GitRepo
from tests.integration.test_promotion import (  # noqa: F401  (fixtures)
    api,
    built,
    config,
    get,
    promote,
    pushed,
    repo,
    work,
)
from tests.services import DockerEngine, Registry, skopeo_inspect
from workers.build_worker import BuildWorker
from workers.promotion_worker import PromotionWorker
from workers.scheduler import reap_expired_leases

pytestmark = pytest.mark.both_registries  # distribution 2.8 and 3


def _expire(db: Database, table: type[Build] | type[Promotion], row_id: int) -> None:
    with db.session() as session:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        session.execute(update(table).where(table.id == row_id).values(lease_expires_at=past))


def _claim(db: Database, kind: jobs.JobKind, worker: str) -> jobs.Job:
    with db.session(immediate=True) as session:
        job = jobs.claim(session, kind, worker, dt.timedelta(seconds=30))
    assert job is not None
    return job


def _dev_tag(registry: Registry, config: Config) -> str:
    return skopeo_inspect(f"{registry.host}/{repo(config, 'dev')}:dev", tls_verify=False)["Digest"]  # type: ignore[no-any-return]


def test_a_stale_claim_touches_nothing_even_under_the_same_worker_name(
    db: Database, config: Config, built: dict[str, int], pushed: dict[str, str], api: TestClient, registry: Registry
) -> None:
    """A worker that stalled past its lease wakes up after another worker finished its promotion
    and a newer one: its claim (epoch 1) is refused at every write and before the tag move."""
    promote(api, "dev", build_id=built["v1"])
    assert work(db, config) == 1
    second = promote(api, "dev", build_id=built["v2"])["id"]
    stalled = _claim(db, jobs.PROMOTIONS, "host:1")
    assert (stalled.id, stalled.epoch) == (second, 1)
    _expire(db, Promotion, second)
    assert reap_expired_leases(db, config) is not None
    assert PromotionWorker(db, config, name="host:1").run_once(), "the same name, after a restart"
    promote(api, "dev", build_id=built["v3"])
    assert work(db, config) == 1
    assert _dev_tag(registry, config) == pushed["v3"]

    with pytest.raises(LeaseLost, match=r"claim 1 .* was taken over|it is succeeded now"):
        ClaimScope(db, stalled).check_lease()
    with pytest.raises(LeaseLost):
        promotion.run_promotion(ClaimScope(db, stalled), config, second)
    for write in (
        lambda s: jobs.heartbeat(s, stalled, dt.timedelta(seconds=30)),
        lambda s: jobs.progress(s, stalled, steps=[]),
        lambda s: jobs.finish(s, stalled, status="failed", error="late"),
    ):
        with pytest.raises(LeaseLost), db.session() as session:
            write(session)
    assert _dev_tag(registry, config) == pushed["v3"], "the stale worker moved the tag back"
    with db.session() as session:
        row = promotions.get_promotion(session, second)
        assert (row.status, row.epoch, row.error) == ("succeeded", 2, None)
        assert promotions.current(session, "demo", "dev").digest == pushed["v3"]  # type: ignore[union-attr]


def test_a_tag_moved_outside_the_history_is_left_alone(
    db: Database, config: Config, built: dict[str, int], pushed: dict[str, str], api: TestClient, registry: Registry
) -> None:
    promote(api, "dev", build_id=built["v1"])
    assert work(db, config) == 1
    target = config.registries["local"]
    with RegistryClient(target) as client:  # someone (or a late worker) moves the tag by hand
        client.tag(repo(config, "dev"), "dev", _copy_into_dev(client, config, pushed["v3"]))
    answer = promote(api, "dev", build_id=built["v2"])
    assert work(db, config) == 1
    failed = get(api, answer["id"])
    assert failed["status"] == "failed"
    assert "moved outside this service" in failed["error"] and pushed["v3"] in failed["error"]
    assert [s["kind"] for s in failed["steps"] if s["status"] == "failed"] == ["move-tag"]
    assert _dev_tag(registry, config) == pushed["v3"], "the tag was moved over a change nobody recorded"
    with db.session() as session:
        assert promotions.current(session, "demo", "dev").digest == pushed["v1"]  # type: ignore[union-attr]


def _copy_into_dev(client: RegistryClient, config: Config, digest: str) -> Manifest:
    """An image into the dev repository by digest (so the tag can point at it)."""
    copy_image(client, config.project("demo").image.repository, client, repo(config, "dev"), digest, tags=[])
    return client.manifest(repo(config, "dev"), digest)


def test_a_bug_in_a_build_step_fails_it_with_the_traceback_in_its_log(
    db: Database, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the checkout step raises something that is no PipelineError."""

    def broken(ctx: build_stage.BuildContext) -> None:
        raise ZeroDivisionError("a bug in a step")

    monkeypatch.setattr("pipeline.build._job.STEPS", (("checkout", broken),))
    with db.session() as session:
        projects.sync_projects(session, config.projects)
        build_id = builds.queue_build(
            session, project="demo", commit="a" * 40, ref="refs/heads/main", branch="main", trigger="test"
        )
    assert BuildWorker(db, config, name="w").run_once()
    with db.session() as session:
        row = builds.get_build(session, build_id)
        log = [line.line for line in builds.read_logs(session, build_id)]
    assert (row.status, row.lease_expires_at) == ("failed", None)
    assert row.error == "internal error: ZeroDivisionError('a bug in a step')"
    assert "Traceback (most recent call last):" in log and any("ZeroDivisionError" in line for line in log)


@pytest.fixture
def idle_workers(db: Database, config: Config) -> Iterator[Config]:
    """A promotion worker that polls only once a minute: whatever starts sooner was woken."""
    data = config.model_dump(mode="json")
    data["worker"]["poll_seconds"] = 60
    slow = parse_config(data)
    worker = PromotionWorker(db, slow, name="idle")
    thread = threading.Thread(target=worker.run_forever)
    thread.start()
    time.sleep(0.3)  # let it find the queue empty and go to sleep
    try:
        yield slow
    finally:
        worker.stop()
        thread.join(timeout=30)
        assert not thread.is_alive(), "stop() did not wake the idle worker"


def _wait_for(db: Database, promotion_id: int, status: str) -> None:
    deadline = time.monotonic() + 20  # a third of the poll interval
    while time.monotonic() < deadline:
        with db.session() as session:
            if promotions.get_promotion(session, promotion_id).status == status:
                return
        time.sleep(0.02)
    pytest.fail(f"promotion {promotion_id} was not {status} within 20 s: the idle worker was not woken")


def test_an_idle_worker_starts_a_queued_promotion_at_once(
    db: Database, idle_workers: Config, built: dict[str, int], api: TestClient
) -> None:
    answer = promote(api, "dev", build_id=built["v1"])
    _wait_for(db, answer["id"], "succeeded")


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_an_idle_worker_hears_work_queued_by_another_process(
    db: Database, idle_workers: Config, built: dict[str, int], pushed: dict[str, str]
) -> None:
    """A row written outside this process (no in-process wake-up): only NOTIFY can wake it."""
    url = make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO promotions (project, environment, digest, build_id, status, trigger, actor, reason, "
            "steps, attempts, epoch, created_at) VALUES ('demo', 'dev', %s, %s, 'pending', 'manual', 'other', "
            "'', '[]', 0, 0, now()) RETURNING id",
            (pushed["v1"], built["v1"]),
        ).fetchone()
    assert row is not None
    _wait_for(db, row[0], "succeeded")


def test_a_build_that_finishes_late_leaves_the_moving_tags_to_the_newer_one(
    tmp_path: Path, engine: DockerEngine, registry: Registry, base_image: str, git_repo: GitRepo
) -> None:
    """Two pushes of main; the newer build finishes first. The older one, finishing late, keeps
    its own tags and records its image, but ``latest`` and ``main`` stay on the newer image."""
    data = project.config_data(
        data_dir=tmp_path / "data", registry_host=registry.host, engine_host=engine.host, repo_url=git_repo.url
    )
    data["projects"]["demo"]["tags"] = ["latest", "{branch}", "{sha}"]
    data["projects"]["demo"]["image"]["repository"] = f"acme/late-{tmp_path.name[-12:].lower()}"
    config = parse_config(data)
    db = open_database(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(db)
    files = {"Dockerfile": project.dockerfile(base_image)}
    older_sha = git_repo.commit({**files, "hello.txt": "older\n"})
    newer_sha = git_repo.commit({**files, "hello.txt": "newer\n"})
    older = project.queue_build(db, config, older_sha)
    newer = project.queue_build(db, config, newer_sha)
    stalled = _claim(db, jobs.BUILDS, "slow-worker")  # the older build, claimed first, then slow
    assert stalled.id == older
    assert BuildWorker(db, config, name="fast-worker").run_once()  # the newer one, start to finish
    result = build_stage.run_build(ClaimScope(db, stalled), config, older)
    assert isinstance(result, build_stage.Recorded) and result.left_tags == ["latest", "main"]

    with db.session() as session:
        old, new = builds.get_build(session, older), builds.get_build(session, newer)
        log = "\n".join(line.line for line in builds.read_logs(session, older))
    assert (old.status, new.status) == ("succeeded", "succeeded") and old.digest != new.digest
    assert old.tags == [older_sha] and new.tags == ["latest", "main", newer_sha]
    repository = f"{registry.host}/{config.project('demo').image.repository}"
    for tag, digest in {"latest": new.digest, "main": new.digest, older_sha: old.digest, newer_sha: new.digest}.items():
        assert skopeo_inspect(f"{repository}:{tag}", tls_verify=False)["Digest"] == digest, tag
    assert f"left latest where it is: build {newer}, queued after this one, already holds it" in log


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_held_tag_lock_gives_the_promotion_back_without_using_up_its_tries(
    db: Database, config: Config, built: dict[str, int], pushed: dict[str, str], api: TestClient, registry: Registry
) -> None:
    """Another worker frozen inside the tag's fence keeps its lock: the promotion waits its turn
    in the queue (no worker hangs on the lock, no try is used up), then moves the tag."""
    data = config.model_dump(mode="json")
    data["worker"].update(lease_seconds=2, max_attempts=1)
    quick = parse_config(data)
    answer = promote(api, "dev", build_id=built["v1"])
    lock = f"tag {config.registries['local'].host}/{repo(config, 'dev')}:dev"
    with db.session() as holder:  # the frozen worker's transaction
        locks.fence(holder, lock, wait=2)
        assert PromotionWorker(db, quick, name="w").run_once()
        waiting = get(api, answer["id"])
        assert (waiting["status"], waiting["attempts"]) == ("pending", 0), waiting
        assert waiting["error"].startswith(f"waiting: {lock} is held by another worker")
    with db.session() as session:  # its turn comes at once when the holder lets go
        session.execute(update(Promotion).where(Promotion.id == answer["id"]).values(not_before=None))
    assert PromotionWorker(db, quick, name="w").run_once()
    done = get(api, answer["id"])
    assert (done["status"], done["attempts"], done["error"]) == ("succeeded", 1, None)
    assert _dev_tag(registry, config) == pushed["v1"]
