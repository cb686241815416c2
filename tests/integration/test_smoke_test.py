"""The ``smoke-test`` promotion step on the session's real engine (bridgeless, so the container
shares the host's network) and real registry: a busybox ``httpd`` image serving a version file
passes; a probe of the wrong body fails and leaves the target tag where it was; a command that
exits fails with its log; one that never answers times out. Every container is removed.

Timeouts are short (config-driven): what is tested is the outcome and what is kept, not speed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Config, parse_config
from pipeline.registry import RegistryClient
from pipeline.store import Database, promotions
from tests.conftest import app_client
from tests.images import OciLayout, busybox_app, skopeo_push
from tests.seed import succeeded_builds
from tests.services import DockerEngine, Registry, free_port
from workers.promotion_worker import PromotionWorker

HTTPD = ["/bin/sh", "-c", 'echo "serving $VERSION_FILE on $PORT"; exec /bin/busybox httpd -f -v -p "$PORT" -h /www']


@pytest.fixture(scope="module")
def app_images(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two versions of an httpd app in the build registry: version -> digest."""
    layout = OciLayout(tmp_path_factory.mktemp("smoke-oci"))
    for version in ("v1", "v2"):
        busybox_app(layout, version, {"www/version": f"{version}\n", "www/healthz": "ok\n"}, HTTPD)
        skopeo_push(layout, version, registry, "acme/smoke-app")
    return dict(layout.refs)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    """For the tests where the database has no part in what is tested (the step's outcome and its
    container); the passing and failing promotion runs on both databases above."""
    from pipeline.store import migrate, open_database

    database = open_database(f"sqlite:///{tmp_path / 'smoke.db'}")
    migrate(database)
    yield database
    database.dispose()


def smoke_config(
    tmp_path: Path, registry: Registry, engine: DockerEngine, smoke: dict[str, Any], run: str
) -> dict[str, Any]:
    return {
        "data_dir": str(tmp_path / "data"),
        "worker": {"lease_seconds": 10, "poll_seconds": 0.05, "max_attempts": 1},
        "builders": [{"name": "smoke-engine", "docker": engine.host}],
        "registries": {"local": {"url": registry.host, "insecure": True}},
        "projects": {
            "demo": {
                "repo": "https://git.example.com/acme/demo.git",
                "image": {"registry": "local", "repository": "acme/smoke-app"},
                "environments": [
                    {"name": "dev", "registry": "local", "repository": f"acme/smoke-{run}", "smoke_test": smoke}
                ],
            }
        },
    }


def smoke(port: int, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "run": {"env": {"PORT": str(port), "VERSION_FILE": "/www/version"}, "port": port},
        "probe": {"http": "/version", "expect_status": 200, "expect_body": "v1", "interval": "100ms"},
        "timeout": "10s",
        "engine": "smoke-engine",
    }
    return base | changes


def promote(db: Database, config: Config, build_id: int) -> Any:
    from pipeline import promotion

    with db.session() as session:
        row = promotion.request_promotion(session, config, "demo", "dev", build_id=build_id, actor="test")
        promotion_id = row.id
    worker = PromotionWorker(db, config, name="smoke-worker")
    while worker.run_once():
        pass
    with db.session() as session:
        return promotions.get_promotion(session, promotion_id)


def step(row: Any) -> dict[str, Any]:
    found = [s for s in row.steps if s["kind"] == "smoke-test"]
    assert len(found) == 1, row.steps
    return found[0]  # type: ignore[no-any-return]


def leftovers(engine: DockerEngine, promotion_id: int) -> str:
    out = engine.docker("ps", "-aq", "--filter", f"label=org.pipeline.promotion={promotion_id}")
    return out.stdout.decode().strip()


def target_tag(config: Config) -> str | None:
    env = config.project("demo").environment("dev")
    with RegistryClient(config.registries["local"]) as client:
        found = client.find_manifest(env.repository, "dev")
    return None if found is None else found.digest


def test_a_serving_image_passes_and_a_wrong_body_fails_leaving_the_tag(
    db: Database, tmp_path: Path, registry: Registry, engine: DockerEngine, app_images: dict[str, str]
) -> None:
    port = free_port()
    data = smoke(port, timeout="3s")  # the wrong body is retried until then
    config = parse_config(smoke_config(tmp_path, registry, engine, data, secrets.token_hex(4)))
    v1, v2 = succeeded_builds(db, config, "demo", [app_images["v1"], app_images["v2"]])

    passed = promote(db, config, v1)
    assert passed.status == "succeeded", passed.error
    record = step(passed)
    assert record["status"] == "succeeded" and "probe passed" in record["message"]
    assert record["image"].endswith(f"@{app_images['v1']}")  # the target's bytes, by digest
    assert record["network"] == "host"  # the session's engine has no bridge
    assert any(f"serving /www/version on {port}" in line for line in record["log"])
    assert record["probe"]["status"] == 200 and record["probe"]["body"] == "v1\n"
    kinds = [s["kind"] for s in passed.steps]
    assert kinds.index("copy-image") < kinds.index("smoke-test") < kinds.index("move-tag")
    assert target_tag(config) == app_images["v1"]
    assert leftovers(engine, passed.id) == ""

    failed = promote(db, config, v2)  # serves v2, the probe expects v1
    assert failed.status == "failed"
    assert "smoke test" in (failed.error or "") and "'v2'" in (failed.error or "")
    assert step(failed)["status"] == "failed" and step(failed)["probe"]["body"] == "v2\n"
    assert "move-tag" not in [s["kind"] for s in failed.steps]
    assert target_tag(config) == app_images["v1"]  # the tag never moved
    assert leftovers(engine, failed.id) == ""

    for api in app_client(db, config):  # the page's timeline: step, duration and log excerpt
        timeline = api.get("/ui/fragments/timeline", params={"project": "demo"}).text
        assert timeline.count('class="smoke-test"') == 2
        assert '<details class="smoke-test" data-status="failed">' in timeline
        assert f"serving /www/version on {port}" in timeline and " s</span>" in timeline
        page = api.get(f"/ui/fragments/promotion/{failed.id}").text  # the promotion's own page
        assert 'id="smoke-facts"' in page and "host network" in page and "&#39;v2&#39;" in page
        assert f"serving /www/version on {port}" in page


def test_a_command_that_exits_fails_with_its_log(
    sqlite_db: Database, tmp_path: Path, registry: Registry, engine: DockerEngine, app_images: dict[str, str]
) -> None:
    port = free_port()
    crash = {"env": {"PORT": str(port)}, "port": port, "command": ["/bin/sh", "-c", "echo missing DB_URL >&2; exit 3"]}
    config = parse_config(smoke_config(tmp_path, registry, engine, smoke(port, run=crash), secrets.token_hex(4)))
    (build,) = succeeded_builds(sqlite_db, config, "demo", [app_images["v1"]])

    row = promote(sqlite_db, config, build)
    assert row.status == "failed"
    assert "exited with code 3" in (row.error or "")
    assert step(row)["log"] == ["missing DB_URL"]
    assert target_tag(config) is None
    assert leftovers(engine, row.id) == ""


def test_a_container_that_never_answers_times_out(
    sqlite_db: Database, tmp_path: Path, registry: Registry, engine: DockerEngine, app_images: dict[str, str]
) -> None:
    port = free_port()
    silent = {"port": port, "command": ["/bin/sleep", "30"]}
    data = smoke(port, run=silent, timeout="1500ms")
    config = parse_config(smoke_config(tmp_path, registry, engine, data, secrets.token_hex(4)))
    (build,) = succeeded_builds(sqlite_db, config, "demo", [app_images["v1"]])

    row = promote(sqlite_db, config, build)
    assert row.status == "failed"
    assert "no passing probe within 1.5 s" in (row.error or "")
    assert "ConnectError" in (row.error or "")  # what the last try saw
    assert target_tag(config) is None
    assert leftovers(engine, row.id) == ""


def test_an_exec_probe_runs_inside_the_container(
    tmp_path: Path, registry: Registry, engine: DockerEngine, app_images: dict[str, str]
) -> None:
    """The other probe kind: a command inside the container (no database involved in what is tested)."""
    from pipeline.store import migrate, open_database

    db = open_database(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(db)
    port = free_port()
    data = smoke(port, probe={"exec": ["/bin/grep", "-q", "v1", "/www/version"], "interval": "100ms"})
    config = parse_config(smoke_config(tmp_path, registry, engine, data, secrets.token_hex(4)))
    (build,) = succeeded_builds(db, config, "demo", [app_images["v1"]])

    row = promote(db, config, build)
    assert row.status == "succeeded", row.error
    assert step(row)["probe"]["exit_code"] == 0
    db.dispose()


def test_a_lost_claim_stops_the_smoke_test_and_removes_its_container(
    tmp_path: Path, registry: Registry, engine: DockerEngine, app_images: dict[str, str]
) -> None:
    """Another worker takes the promotion over (its claim's epoch moves on) while the probe waits:
    the step stops at the heartbeat's next beat, removes the container and records nothing."""
    import threading
    import time

    from sqlalchemy import update

    from pipeline import promotion
    from pipeline.store import Promotion, migrate, open_database

    db = open_database(f"sqlite:///{tmp_path / 'lost.db'}")
    migrate(db)
    port = free_port()
    data = smoke(port, run={"port": port, "command": ["/bin/sleep", "60"]}, timeout="60s")
    config = parse_config(smoke_config(tmp_path, registry, engine, data, secrets.token_hex(4)))
    (build,) = succeeded_builds(db, config, "demo", [app_images["v1"]])
    with db.session() as session:
        promotion_id = promotion.request_promotion(session, config, "demo", "dev", build_id=build, actor="t").id

    def take_over() -> None:
        for _ in range(600):  # once the container runs, another worker "claims" the row
            if leftovers(engine, promotion_id):
                with db.session() as session:
                    session.execute(
                        update(Promotion)
                        .where(Promotion.id == promotion_id)
                        .values(worker="other-worker", epoch=Promotion.epoch + 1)
                    )
                return
            time.sleep(0.1)

    thief = threading.Thread(target=take_over)
    thief.start()
    assert PromotionWorker(db, config, name="smoke-worker").run_once()
    thief.join()
    assert leftovers(engine, promotion_id) == ""
    with db.session() as session:
        row = promotions.get_promotion(session, promotion_id)
    assert (row.status, row.worker) == ("running", "other-worker")  # left to its new owner
    assert "smoke-test" not in [s["kind"] for s in row.steps]  # the stale worker recorded nothing
    assert target_tag(config) is None
    db.dispose()


def test_the_target_registry_s_credentials_pull_the_candidate(
    tmp_path: Path,
    registry: Registry,
    secure_registry: Registry,
    engine: DockerEngine,
    app_images: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Target: TLS and basic auth. The engine logs in with the registry's username_env and
    password_env into a throw-away config and pulls by digest (docker skips certificate checks
    on 127.0.0.0/8, as it would use a CA in its certs.d elsewhere)."""
    from pipeline.store import migrate, open_database
    from tests.conftest import REGISTRY_PASSWORD, REGISTRY_USER

    monkeypatch.setenv("SMOKE_USER", REGISTRY_USER)
    monkeypatch.setenv("SMOKE_PASSWORD", REGISTRY_PASSWORD)
    db = open_database(f"sqlite:///{tmp_path / 'auth.db'}")
    migrate(db)
    port = free_port()
    data = smoke_config(tmp_path, registry, engine, smoke(port), secrets.token_hex(4))
    data["registries"]["private"] = {
        "url": secure_registry.url,
        "ca_file": str(secure_registry.ca_file),
        "username_env": "SMOKE_USER",
        "password_env": "SMOKE_PASSWORD",
    }
    data["projects"]["demo"]["environments"][0]["registry"] = "private"
    config = parse_config(data)
    (build,) = succeeded_builds(db, config, "demo", [app_images["v1"]])

    row = promote(db, config, build)
    assert row.status == "succeeded", row.error
    assert (
        step(row)["image"]
        == f"{secure_registry.host}/{config.project('demo').environment('dev').repository}@{app_images['v1']}"
    )
    assert leftovers(engine, row.id) == ""
    db.dispose()
