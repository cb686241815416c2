"""Promotions through a registry that fails a fifth of the time (resets, resets half-way
through a response, 500, 429): each promotion ends succeeded or failed with a clear error,
and no tag ever points at a manifest whose blobs are missing.

The target is a real distribution registry behind tests/fault_proxy.py; the source is the
session's build registry, reached directly.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pipeline.config import Config, parse_config
from pipeline.logs import _JobFilter
from pipeline.registry import MANIFEST_TYPES
from pipeline.store import Database, builds, projects, promotions
from tests.fault_proxy import FaultProxy
from tests.images import OciLayout, skopeo_push
from tests.services import Registry
from workers.promotion_worker import PromotionWorker

ENVIRONMENTS = ("a", "b", "c", "d")


@pytest.fixture(scope="module")
def flaky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, FaultProxy]]:
    target = Registry(tmp_path_factory.mktemp("flaky-registry"))
    target.start()
    proxy = FaultProxy(target.url, rate=0.2, kinds=("reset", "reset_mid_body", "500", "429"), seed=7)
    proxy.start()
    yield target, proxy
    proxy.stop()
    target.stop()


@pytest.fixture(scope="module")
def images(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    layout = OciLayout(tmp_path_factory.mktemp("faults-oci"))
    for seed in range(len(ENVIRONMENTS)):
        layout.tag(f"f{seed}", layout.image([400_000, 150_000, 20_000], seed=100 + seed))
        skopeo_push(layout, f"f{seed}", registry, "acme/faulty")
    return [layout.refs[f"f{seed}"] for seed in range(len(ENVIRONMENTS))]


def _config(tmp_path: Path, registry: Registry, proxy: FaultProxy, run: str) -> Config:
    """Fresh repositories per run (``run``): the flaky registry serves both database variants."""
    return parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            "worker": {"lease_seconds": 10, "poll_seconds": 0.05, "max_attempts": 3, "retry_seconds": 0.2},
            "registries": {
                "local": {"url": registry.host, "insecure": True},
                "flaky": {"url": proxy.host, "insecure": True},
            },
            "projects": {
                "faulty": {
                    "repo": "https://git.example.com/acme/faulty.git",
                    "allow_unsigned": True,
                    "image": {"registry": "local", "repository": "acme/faulty"},
                    "environments": [
                        {"name": env, "registry": "flaky", "repository": f"{run}/{env}"} for env in ENVIRONMENTS
                    ],
                }
            },
        }
    )


def _tagged_manifests_are_complete(upstream: Registry, run: str) -> list[str]:
    """Every tag in the target, checked directly (no faults): its manifest and all its blobs exist."""
    checked = []
    with httpx.Client(base_url=upstream.url) as http:
        for env in ENVIRONMENTS:
            tags = http.get(f"/v2/{run}/{env}/tags/list")
            if tags.status_code == 404:
                continue
            for tag in tags.json().get("tags") or []:
                manifest = http.get(f"/v2/{run}/{env}/manifests/{tag}", headers={"Accept": ", ".join(MANIFEST_TYPES)})
                assert manifest.status_code == 200, (env, tag, manifest.text)
                body = manifest.json()
                for blob in [body["config"], *body["layers"]]:
                    assert http.head(f"/v2/{run}/{env}/blobs/{blob['digest']}").status_code == 200, (env, tag, blob)
                checked.append(f"{env}:{tag}")
    return checked


def test_every_promotion_ends_clearly_and_no_tag_points_at_missing_blobs(
    db: Database,
    tmp_path: Path,
    registry: Registry,
    flaky: tuple[Registry, FaultProxy],
    images: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream, proxy = flaky
    run = f"run{secrets.token_hex(3)}"
    config = _config(tmp_path, registry, proxy, run)
    with db.session() as session:
        projects.sync_projects(session, config.projects)
        ids = []
        for env, digest in zip(ENVIRONMENTS, images, strict=True):
            build_id = builds.queue_build(
                session, project="faulty", commit="a" * 40, ref="refs/heads/main", branch="main", trigger="test"
            )
            builds.record_progress(session, build_id, status="succeeded", digest=digest)
            ids.append(
                promotions.add_promotion(
                    session,
                    project="faulty",
                    environment=env,
                    digest=digest,
                    build_id=build_id,
                    actor="test",
                    status="pending",
                ).id
            )
    proxy.reset_counters()
    caplog.set_level(logging.WARNING, logger="pipeline.registry")
    caplog.handler.addFilter(_JobFilter())  # as setup_logging's handler: records carry the job's id
    worker, deadline = PromotionWorker(db, config, name="flaky-promoter"), time.monotonic() + 120
    while time.monotonic() < deadline:
        if not worker.run_once():
            with db.session() as session:
                rows = [promotions.get_promotion(session, i) for i in ids]
            if all(r.status in ("succeeded", "failed") for r in rows):
                break
            time.sleep(0.1)
    assert proxy.injected >= 5, proxy.stats()  # the faults really happened
    # each retry was said as it happened, tagged with the promotion it was for
    retried = [r for r in caplog.records if r.name == "pipeline.registry._retry"]
    assert retried and all(f"registry {proxy.host.split(':')[0]}" in r.getMessage() for r in retried)
    assert all(getattr(r, "promotion_id", None) in ids for r in retried), [r.__dict__ for r in retried[:2]]
    assert {r.status for r in rows} <= {"succeeded", "failed"}, [(r.id, r.status) for r in rows]
    for row in rows:
        if row.status == "failed":
            assert row.error and "registry" in row.error, row.error
        else:
            assert row.target_ref == f"{proxy.host}/{run}/{row.environment}:{row.environment}@{row.digest}"
    assert sum(r.status == "succeeded" for r in rows) >= 1
    tagged = _tagged_manifests_are_complete(upstream, run)
    succeeded = {f"{r.environment}:{r.environment}" for r in rows if r.status == "succeeded"}
    assert succeeded <= set(tagged)
