"""Benchmark: what the ``smoke-test`` step adds to a promotion of the sample app.

The sample app is a busybox ``httpd`` image (about 1 MB: the static busybox and a version file)
in a real distribution registry; promotions are worked by the real ``PromotionWorker`` on an
SQLite database, into a real engine started ``--bridge=none`` (so the container runs with
``--network host``). In the same run, alternately:

- baseline: a promotion into an environment without ``smoke_test`` (copy, signatures, tag);
- cold: the same into an environment with ``smoke_test`` (HTTP probe of ``/version``), the
  image first removed from the engine, so the step pulls it as it would pull a new digest;
- warm: the same with the image already on the engine (a re-promotion, or a retry).

Each promotion goes into a repository of its own, so every copy is a real copy. Printed: the
medians, the ratios against the baseline, and the smoke step's own seconds as it recorded them.

    cd /work/main && uv run python bench/smoke_step.py [--quick] [--runs N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Stopwatch, code_version, machine_load, median, table, time_limit

from pipeline import promotion
from pipeline.config import Config, parse_config
from pipeline.store import Database, migrate, open_database, promotions
from tests.images import OciLayout, busybox_app, skopeo_push
from tests.seed import succeeded_builds
from tests.services import DockerEngine, Registry, free_port
from workers.promotion_worker import PromotionWorker

HTTPD = ["/bin/sh", "-c", 'exec /bin/busybox httpd -f -p "$PORT" -h /www']


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def config_for(root: Path, registry: Registry, engine: DockerEngine, runs: int, port: int) -> Config:
    smoke = {
        "run": {"env": {"PORT": str(port)}, "port": port},
        "probe": {"http": "/version", "expect_body": "v1", "interval": "50ms"},
        "timeout": "20s",
    }
    environments: list[dict[str, Any]] = [
        {"name": "warmup", "registry": "local", "repository": "bench/warmup", "smoke_test": smoke}
    ]
    for n in range(runs):
        for kind in ("plain", "cold", "warm"):
            env: dict[str, Any] = {"name": f"{kind}{n}", "registry": "local", "repository": f"bench/{kind}-{n}"}
            if kind != "plain":
                env["smoke_test"] = smoke
            environments.append(env)
    return parse_config(
        {
            "data_dir": str(root / "data"),
            "worker": {"lease_seconds": 30, "poll_seconds": 0.05, "max_attempts": 1},
            "builders": [{"name": "bench-engine", "docker": engine.host}],
            "registries": {"local": {"url": registry.host, "insecure": True}},
            "projects": {
                "app": {
                    "repo": "https://git.example.com/bench/app.git",
                    "image": {"registry": "local", "repository": "bench/app"},
                    "environments": environments,
                }
            },
        }
    )


PHASES: dict[str, list[float]] = {}


def promote(db: Database, config: Config, environment: str, build_id: int) -> tuple[float, float | None]:
    """Wall time from the request to the recorded end; the smoke step's own seconds (its phases
    go to ``PHASES`` under the environment's kind)."""
    worker = PromotionWorker(db, config, name="bench")
    with Stopwatch() as sw:
        with db.session() as session:
            row = promotion.request_promotion(session, config, "app", environment, build_id=build_id, actor="bench")
            promotion_id = row.id
        while worker.run_once():
            pass
    with db.session() as session:
        done = promotions.get_promotion(session, promotion_id)
    if done.status != "succeeded":
        raise RuntimeError(f"promotion into {environment} {done.status}: {done.error}")
    smoke = [s.get("seconds") for s in done.steps if s["kind"] == "smoke-test"]
    for step in done.steps:
        for phase, seconds in (step.get("timings") or {}).items():
            PHASES.setdefault(f"{environment.rstrip('0123456789')} {phase}", []).append(seconds)
    return sw.seconds, smoke[0] if smoke else None


def drop_images(engine: DockerEngine, digest: str) -> None:
    found = engine.docker("images", "--digests", "--format", "{{.ID}} {{.Digest}}").stdout.decode().split("\n")
    ids = sorted({line.split()[0] for line in found if line.endswith(digest)})
    if ids:
        engine.docker("image", "rm", "--force", *ids, timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 runs instead of 7")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 7)
    print(code_version())
    print("before:", machine_load())
    with tempfile.TemporaryDirectory(prefix="bench-smoke-") as tmp, time_limit(900):
        root = Path(tmp)
        engine, registry = DockerEngine(root / "engine"), Registry(root / "registry")
        engine.start()
        registry.start()
        try:
            layout = OciLayout(root / "oci")
            digest = busybox_app(layout, "v1", {"www/version": "v1\n"}, HTTPD)
            skopeo_push(layout, "v1", registry, "bench/app")
            db = open_database(f"sqlite:///{root / 'bench.db'}")
            migrate(db)
            config = config_for(root, registry, engine, runs, free_port())
            (build,) = succeeded_builds(db, config, "app", [digest])
            promote(db, config, "warmup", build)  # the engine has the image, the code is imported
            times: dict[str, list[float]] = {"plain": [], "cold": [], "warm": []}
            steps: dict[str, list[float]] = {"cold": [], "warm": []}
            for n in range(runs):
                for kind in ("plain", "cold", "warm"):
                    if kind == "cold":  # every image of that digest goes: the step must pull it
                        drop_images(engine, digest)
                    seconds, smoke = promote(db, config, f"{kind}{n}", build)
                    times[kind].append(seconds)
                    if smoke is not None:
                        steps[kind].append(smoke)
                say(f"run {n + 1}/{runs}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items() if v))
            db.dispose()
        finally:
            registry.stop()
            engine.stop()
    base = median(times["plain"])
    rows = [
        ["without smoke_test", len(times["plain"]), base, "-", 1.0],
        ["smoke_test, image pulled", len(times["cold"]), median(times["cold"]), median(steps["cold"]), 0.0],
        ["smoke_test, image on the engine", len(times["warm"]), median(times["warm"]), median(steps["warm"]), 0.0],
    ]
    for row in rows[1:]:
        row[4] = float(row[2]) / base
    print(table(["promotion of the sample app", "runs", "median s", "smoke step s", "ratio"], rows))
    print(table(["smoke step phase", "median s"], [[k, median(v)] for k, v in PHASES.items() if "warmup" not in k]))
    print(f"ratio promotion with smoke test (pulled) / without: {median(times['cold']) / base:.2f}")
    print(f"ratio promotion with smoke test (image present) / without: {median(times['warm']) / base:.2f}")
    print(f"the smoke step adds {median(times['cold']) - base:.2f} s (pulled), {median(times['warm']) - base:.2f} s")
    print("after:", machine_load())


if __name__ == "__main__":
    main()
