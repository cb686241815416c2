"""Promotion by digest through dev (plain HTTP) → staging (TLS + basic auth) → prod (token
auth), on SQLite and PostgreSQL: policy, history, the matrix, rollback, holds, rejections.

Build rows are written straight into the database for images that skopeo pushed into the
build registry: what is under test here starts after the build.
"""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pipeline import promotion
from pipeline.config import Config, parse_config
from pipeline.store import Database, builds, jobs, promotions
from tests.conftest import REGISTRY_PASSWORD, REGISTRY_USER, TOKEN_USERS, app_client, token_headers
from tests.images import OciLayout, skopeo_push
from tests.seed import succeeded_builds
from tests.services import Registry, skopeo_inspect
from workers.promotion_worker import PromotionWorker

pytestmark = pytest.mark.both_registries  # distribution 2.8 and 3

IMAGES = ("v1", "v2", "v3")


@pytest.fixture(scope="module")
def pushed(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Three versions of the demo image in the build registry: tag -> digest."""
    layout = OciLayout(tmp_path_factory.mktemp("promo-oci"))
    for seed, tag in enumerate(IMAGES, start=10):
        layout.tag(tag, layout.image([120_000, 4_000], seed=seed))
        skopeo_push(layout, tag, registry, "acme/demo")
    return dict(layout.refs)


def config_data(tmp_path: Path, registry: Registry, secure: Registry, token: Registry, run: str) -> dict[str, Any]:
    """Repositories named per test (``run``): the registries live for the whole session."""
    return {
        "data_dir": str(tmp_path / "data"),
        "worker": {"lease_seconds": 10, "poll_seconds": 0.05, "max_attempts": 2},
        "registries": {
            "local": {"url": registry.host, "insecure": True},
            "private": {
                "url": secure.url,
                "ca_file": str(secure.ca_file),
                "username_env": "PRIV_USER",
                "password_env": "PRIV_PASSWORD",
            },
            "public": {
                "url": token.url,
                "ca_file": str(token.ca_file),
                "username_env": "PUB_USER",
                "password_env": "PUB_PASSWORD",
            },
        },
        "projects": {
            "demo": {
                "repo": "https://git.example.com/acme/demo.git",
                "allow_unsigned": True,
                "image": {"registry": "local", "repository": "acme/demo"},
                "environments": [
                    {"name": "dev", "registry": "local", "repository": f"acme/dev-{run}", "auto": True},
                    {
                        "name": "staging",
                        "registry": "private",
                        "repository": f"team/staging-{run}",
                        "requires": "dev",
                        "tag": "staging-{short_sha}",
                    },
                    {"name": "prod", "registry": "public", "repository": f"team/prod-{run}", "requires": "staging"},
                ],
            }
        },
    }


@pytest.fixture
def config(
    tmp_path: Path,
    registry: Registry,
    secure_registry: Registry,
    token_registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> Config:
    for name, value in {
        "PRIV_USER": REGISTRY_USER,
        "PRIV_PASSWORD": REGISTRY_PASSWORD,
        "PUB_USER": "alice",
        "PUB_PASSWORD": TOKEN_USERS["alice"],
    }.items():
        monkeypatch.setenv(name, value)
    return parse_config(config_data(tmp_path, registry, secure_registry, token_registry, secrets.token_hex(4)))


def repo(config: Config, environment: str) -> str:
    return config.project("demo").environment(environment).repository


@pytest.fixture
def built(db: Database, config: Config, pushed: dict[str, str]) -> dict[str, int]:
    """One succeeded build row per pushed image: tag -> build id."""
    return dict(zip(IMAGES, succeeded_builds(db, config, "demo", [pushed[t] for t in IMAGES]), strict=True))


@pytest.fixture
def api(db: Database, config: Config) -> Iterator[TestClient]:
    yield from app_client(db, config, actor="ops@example.com")


def work(db: Database, config: Config) -> int:
    """Run promotion workers in this process until the queue is empty; how many they worked."""
    worker, count = PromotionWorker(db, config, name="test-promoter"), 0
    while worker.run_once():
        count += 1
    return count


def promote(api: TestClient, environment: str, **body: Any) -> dict[str, Any]:
    answer = api.post("/api/v1/promotions", json={"project": "demo", "environment": environment, **body})
    assert answer.status_code == 202, answer.text
    return answer.json()  # type: ignore[no-any-return]


def get(api: TestClient, promotion_id: int) -> dict[str, Any]:
    return api.get(f"/api/v1/promotions/{promotion_id}").json()  # type: ignore[no-any-return]


def matrix(api: TestClient) -> dict[str, dict[str, Any]]:
    return {e["environment"]: e for e in api.get("/api/v1/environments").json()["items"]}


def test_a_digest_moves_dev_staging_prod_across_three_kinds_of_registry(
    db: Database,
    config: Config,
    built: dict[str, int],
    pushed: dict[str, str],
    api: TestClient,
    secure_registry: Registry,
    token_registry: Registry,
) -> None:
    digest = pushed["v1"]
    for env in ("dev", "staging", "prod"):
        row = promote(api, env, build_id=built["v1"], reason=f"ship to {env}")
        assert row["status"] == "pending" and row["actor"] == "ops@example.com" and row["digest"] == digest
        assert work(db, config) == 1
        done = get(api, row["id"])
        assert done["status"] == "succeeded", done["error"]
        assert [s["kind"] for s in done["steps"]] == ["copy-image", "copy-signatures", "move-tag"]
    assert (
        done["source_ref"] == f"{secure_registry.host}/{repo(config, 'staging')}@{digest}"
    )  # prod copies from staging
    assert done["target_ref"] == f"{token_registry.host}/{repo(config, 'prod')}:prod@{digest}"
    assert done["copy_report"]["blobs_copied"] == 3

    staging_tag = f"staging-{'1' * 7}"
    assert (
        skopeo_inspect(
            f"{secure_registry.host}/{repo(config, 'staging')}:{staging_tag}",
            tls_verify=True,
            cert_dir=secure_registry.cert_dir,
            creds=secure_registry.creds(),
        )["Digest"]
        == digest
    )
    assert (
        skopeo_inspect(
            f"{token_registry.host}/{repo(config, 'prod')}:prod",
            tls_verify=True,
            cert_dir=token_registry.cert_dir,
            creds=f"alice:{TOKEN_USERS['alice']}",
        )["Digest"]
        == digest
    )

    state = matrix(api)
    assert state["prod"]["current"]["digest"] == digest
    assert state["prod"]["current"]["commit"] == "1" * 40
    assert state["prod"]["current"]["actor"] == "ops@example.com"
    assert state["prod"]["previous"] is None and state["prod"]["held"] is None
    lineage = api.get(f"/api/v1/images/{digest}").json()
    assert [b["id"] for b in lineage["builds"]] == [built["v1"]]
    assert [p["environment"] for p in lineage["promotions"]] == ["dev", "staging", "prod"]
    assert sorted(lineage["running_in"]) == ["demo/dev", "demo/prod", "demo/staging"]


def test_skipping_an_environment_is_refused_and_recorded(
    db: Database, config: Config, built: dict[str, int], api: TestClient
) -> None:
    answer = api.post("/api/v1/promotions", json={"project": "demo", "environment": "staging", "build_id": built["v1"]})
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
    assert "has not reached dev yet" in answer.json()["detail"]
    [row] = api.get("/api/v1/promotions", params={"status": "rejected"}).json()["items"]
    assert row["environment"] == "staging" and "has not reached dev" in row["error"]
    assert work(db, config) == 0


def test_a_rejected_digest_is_never_promoted_again(
    db: Database, config: Config, built: dict[str, int], pushed: dict[str, str], api: TestClient, registry: Registry
) -> None:
    queued = promote(api, "dev", digest=pushed["v2"])
    refused = api.post(
        f"/api/v1/images/{pushed['v2']}/reject",
        json={"reason": "CVE-2026-0001 in libfoo"},
        headers=token_headers(db, "security", "promoter"),
    )
    assert refused.status_code == 200 and refused.json()["actor"] == "security"
    assert work(db, config) == 1
    late = get(api, queued["id"])  # asked before the rejection, refused when the worker looked
    assert late["status"] == "rejected" and "CVE-2026-0001" in late["error"]
    again = api.post("/api/v1/promotions", json={"project": "demo", "environment": "dev", "digest": pushed["v2"]})
    assert again.status_code == 409 and "rejected by security" in again.json()["detail"]
    assert api.get(f"/api/v1/images/{pushed['v2']}").json()["rejected"]["reason"] == "CVE-2026-0001 in libfoo"
    with pytest.raises(RuntimeError):  # nothing was ever tagged dev
        skopeo_inspect(f"{registry.host}/{repo(config, 'dev')}:dev", tls_verify=False)


def test_rollback_walks_back_through_history_and_holds_the_environment(
    db: Database, config: Config, built: dict[str, int], pushed: dict[str, str], api: TestClient, registry: Registry
) -> None:
    for tag in IMAGES:
        promote(api, "dev", build_id=built[tag])
        work(db, config)
    assert matrix(api)["dev"]["previous"]["digest"] == pushed["v2"]

    rolled = api.post("/api/v1/environments/demo/dev/rollback", json={"reason": "v3 breaks login"})
    assert rolled.status_code == 202, rolled.text
    assert rolled.json()["digest"] == pushed["v2"] and rolled.json()["trigger"] == "rollback"
    work(db, config)
    state = matrix(api)["dev"]
    assert state["current"]["digest"] == pushed["v2"] and state["previous"]["digest"] == pushed["v1"]
    assert state["held"]["reason"].startswith("rollback by promotion")
    assert skopeo_inspect(f"{registry.host}/{repo(config, 'dev')}:dev", tls_verify=False)["Digest"] == pushed["v2"]

    with db.session() as session:  # automation must not undo the rollback
        [auto] = promotion.queue_auto_after_build(session, config, builds.get_build(session, built["v3"]))
        assert auto.status == "rejected" and "dev is held" in (auto.error or "")
    manual = api.post("/api/v1/promotions", json={"project": "demo", "environment": "dev", "build_id": built["v3"]})
    assert manual.status_code == 409 and "/api/v1/environments/demo/dev/release" in manual.json()["detail"]

    assert api.post("/api/v1/environments/demo/dev/rollback").status_code == 202  # a second step back
    work(db, config)
    assert matrix(api)["dev"]["current"]["digest"] == pushed["v1"]
    nothing = api.post("/api/v1/environments/demo/dev/rollback")
    assert nothing.status_code == 409 and "nothing to roll back to" in nothing.json()["detail"]

    released = api.post("/api/v1/environments/demo/dev/release", headers=token_headers(db, "ops", "promoter"))
    assert released.status_code == 200 and released.json()["released_by"] == "ops"
    assert api.post("/api/v1/environments/demo/dev/release").status_code == 404
    promote(api, "dev", build_id=built["v3"])
    work(db, config)
    assert matrix(api)["dev"]["current"]["digest"] == pushed["v3"]


def test_promoting_what_already_runs_is_a_no_op_success(
    db: Database, config: Config, built: dict[str, int], api: TestClient
) -> None:
    first = promote(api, "dev", build_id=built["v1"])
    work(db, config)
    again = promote(api, "dev", build_id=built["v1"])
    work(db, config)
    done = get(api, again["id"])
    assert done["status"] == "succeeded" and done["copy_report"] is None
    assert "already current" in done["steps"][0]["message"]
    assert get(api, first["id"])["copy_report"]["blobs_mounted"] == 3  # dev shares the build registry


def test_auto_promotion_follows_a_build_and_cascades_to_later_auto_stages(
    db: Database, config: Config, built: dict[str, int], pushed: dict[str, str]
) -> None:
    data = config.model_dump(mode="json")
    data["projects"]["demo"]["environments"][1]["auto"] = True  # staging follows dev
    cascading = parse_config(data)
    with db.session() as session:
        [dev] = promotion.queue_auto_after_build(session, cascading, builds.get_build(session, built["v2"]))
        assert (dev.environment, dev.trigger, dev.actor) == ("dev", "auto", "auto")
        feature = builds.get_build(session, built["v1"])
        feature.branch = "feature/x"  # not a configured branch: no automatic promotion
        assert promotion.queue_auto_after_build(session, cascading, feature) == []
    assert work(db, cascading) == 2
    with db.session() as session:
        assert promotions.current(session, "demo", "staging").digest == pushed["v2"]  # type: ignore[union-attr]
        assert promotions.current(session, "demo", "prod") is None  # prod is not auto


def test_concurrent_promotions_to_one_environment_apply_in_request_order(
    db: Database, config: Config, built: dict[str, int], pushed: dict[str, str], api: TestClient, registry: Registry
) -> None:
    order = ["v1", "v2", "v3", "v1", "v3", "v2"]
    ids = [promote(api, "dev", build_id=built[tag])["id"] for tag in order]
    workers = [PromotionWorker(db, config, name=f"p{i}") for i in range(3)]
    threads = [threading.Thread(target=w.run_forever) for w in workers]
    for thread in threads:
        thread.start()
    try:
        deadline = threading.Event()
        for _ in range(300):
            rows = [get(api, i) for i in ids]
            if all(r["status"] not in ("pending", "running") for r in rows):
                break
            deadline.wait(0.1)
    finally:
        for w in workers:
            w.stop()
        for thread in threads:
            thread.join()
    assert [r["status"] for r in rows] == ["succeeded"] * len(ids)
    for before, after in itertools.pairwise(rows):  # three workers, yet each began after the one before ended
        assert dt.datetime.fromisoformat(after["started_at"]) >= dt.datetime.fromisoformat(before["finished_at"]), [
            (r["id"], r["worker"], r["attempts"], r["started_at"], r["finished_at"]) for r in rows
        ]
    assert matrix(api)["dev"]["current"]["promotion_id"] == ids[-1]
    assert skopeo_inspect(f"{registry.host}/{repo(config, 'dev')}:dev", tls_verify=False)["Digest"] == pushed[order[-1]]


def test_refused_credentials_fail_the_promotion_without_moving_the_tag(
    db: Database,
    config: Config,
    built: dict[str, int],
    api: TestClient,
    secure_registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    promote(api, "dev", build_id=built["v1"])
    work(db, config)
    monkeypatch.setenv("PRIV_PASSWORD", "wrong")
    row = promote(api, "staging", build_id=built["v1"])
    assert work(db, config) == 1
    failed = get(api, row["id"])
    assert failed["status"] == "failed" and failed["attempts"] == 1  # refused credentials are not retried
    assert "refused the password of builder" in failed["error"]
    assert failed["steps"][0]["status"] == "failed"
    assert "PRIV_PASSWORD" not in failed["error"] and "wrong" not in failed["error"]
    assert matrix(api)["staging"]["current"] is None


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"project": "nope", "environment": "dev", "build_id": 1}, 404, "no project named 'nope'"),
        ({"project": "demo", "environment": "qa", "build_id": 1}, 404, "no environment 'qa'"),
        ({"project": "demo", "environment": "dev"}, 422, "exactly one of digest or build_id"),
        ({"project": "demo", "environment": "dev", "digest": "sha256:abc"}, 422, "sha256:<64 lowercase hex>"),
        ({"project": "demo", "environment": "dev", "digest": "sha256:" + "e" * 64}, 422, "no succeeded build"),
        ({"project": "demo", "environment": "dev", "build_id": 999}, 404, "no build with id 999"),
        ({"project": "demo", "environment": "dev", "build_id": 1, "tag": "x"}, 422, "body.tag"),
    ],
)
def test_bad_promotion_requests_get_clear_problems_and_record_nothing(
    body: dict[str, Any], status: int, words: str, built: dict[str, int], api: TestClient
) -> None:
    answer = api.post("/api/v1/promotions", json=body)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["detail"]
    assert api.get("/api/v1/promotions").json()["items"] == []


def test_a_queued_build_cannot_be_promoted_and_a_rejection_needs_a_reason(
    db: Database, config: Config, built: dict[str, int], pushed: dict[str, str], api: TestClient
) -> None:
    with db.session() as session:
        queued = builds.queue_build(
            session, project="demo", commit="f" * 40, ref="refs/heads/main", branch="main", trigger="test"
        )
    answer = api.post("/api/v1/promotions", json={"project": "demo", "environment": "dev", "build_id": queued})
    assert answer.status_code == 422 and f"build {queued} is queued" in answer.json()["detail"]
    assert api.post(f"/api/v1/images/{pushed['v1']}/reject", json={"reason": " "}).status_code == 422
    assert api.post("/api/v1/images/sha256:zz/reject", json={"reason": "x"}).status_code == 422
    with db.session() as session:
        assert promotions.rejection(session, pushed["v1"]) is None
        assert jobs.claim(session, jobs.PROMOTIONS, "w", dt.timedelta(seconds=5)) is None


def test_promotion_history_pages_stay_stable_while_promotions_arrive(
    db: Database, config: Config, built: dict[str, int], api: TestClient
) -> None:
    ids = [promote(api, "dev", build_id=built[tag])["id"] for tag in IMAGES]
    first = api.get("/api/v1/promotions", params={"project": "demo", "limit": 2}).json()
    assert [p["id"] for p in first["items"]] == ids[:0:-1]
    newer = promote(api, "dev", build_id=built["v1"])["id"]  # arrives between the two pages
    second = api.get("/api/v1/promotions", params={"project": "demo", "limit": 2, "cursor": first["next_cursor"]})
    assert [p["id"] for p in second.json()["items"]] == [ids[0]] and second.json()["next_cursor"] is None
    assert api.get("/api/v1/promotions", params={"limit": 1}).json()["items"][0]["id"] == newer
    assert api.get("/api/v1/promotions", params={"cursor": "garbage"}).status_code == 422
    assert api.get("/api/v1/promotions", params={"actor": "ops@example.com", "environment": "dev"}).json()["items"]
    assert api.get("/api/v1/promotions", params={"trigger": "rollback"}).json()["items"] == []


def test_the_matrix_reports_lead_time_from_push_to_arrival(
    db: Database, config: Config, built: dict[str, int], pushed: dict[str, str], api: TestClient
) -> None:
    now = dt.datetime.now(dt.UTC)
    with db.session() as session:
        for n, delay in enumerate([60, 120, 180, 600, 90, 5]):
            build_id = builds.queue_build(
                session, project="demo", commit=f"{n:x}" * 40, ref="refs/heads/main", branch="main", trigger="test"
            )
            pushed_at = now - dt.timedelta(days=40 if n == 5 else 1, seconds=delay)
            builds.record_progress(session, build_id, status="succeeded", digest=pushed["v1"], created_at=pushed_at)
            promotions.add_promotion(
                session,
                project="demo",
                environment="dev",
                digest=pushed["v1"],
                build_id=build_id,
                actor="t",
                status="succeeded",
                trigger="rollback" if n == 4 else "manual",  # a rollback is no arrival
                created_at=pushed_at,
                finished_at=pushed_at + dt.timedelta(seconds=delay),
            )
    lead = matrix(api)["dev"]["lead_time"]
    assert (lead["samples"], lead["median_seconds"], lead["window_days"]) == (4, 150.0, 30)
    assert lead["p90_seconds"] == pytest.approx(474.0)
    assert api.get("/api/v1/environments", params={"window_days": 60}).json()["items"][0]["lead_time"]["samples"] == 5
    assert matrix(api)["prod"]["lead_time"] is None
