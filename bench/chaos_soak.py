"""Soak: the chaos tests of ``tests/chaos`` at length, bounded in kills and in time, loopback only.

Starts its own PostgreSQL 15, a distribution registry and (unless ``--no-builds``) a Docker
engine, all on 127.0.0.1 under a temporary directory, then:

1. SIGKILL of ``pipeline worker`` processes at every promotion step (dev signs and writes Git,
   prod verifies, signs and writes Git), ``--promotion-kills`` kills;
2. the same at every build step (checkout, build, push, record), ``--build-kills`` kills;
3. one SIGSTOP-past-the-lease round per step (copy-image, sign, git-push, move-tag), ``--freezes``
   times each;

and after each: 0 lost, 0 duplicated outcomes, registry tags and Git equal to the database,
nothing left running (``tests.chaos.harness``). It also measures the fencing window that
remains (registries have no compare-and-swap): for every move of an environment tag, the time
from the fenced claim check (PostgreSQL's statement log, ``log_statement = all``) to the
registry's PUT of the tag (the registry's access log, start = completion - duration).

    cd /work/main && uv run python bench/chaos_soak.py [--promotion-kills 200] [--build-kills 60]
        [--freezes 2] [--minutes 30] [--seed N] [--no-builds]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import OutOfTime, code_version, machine_load, median, table, time_limit

from pipeline.store import Database, migrate, open_database
from tests.chaos import harness
from tests.services import DockerEngine, Postgres, Registry


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Services:
    """PostgreSQL (statements logged), a registry, and a Docker engine on demand."""

    def __init__(self, root: Path, builds: bool) -> None:
        self.root = root
        self.pg = Postgres(root / "pg")
        self.pg.start()
        self.pg.psql("ALTER SYSTEM SET log_statement = 'all'")
        self.pg.psql("ALTER SYSTEM SET log_line_prefix = '%m [%p] '")
        self.pg.psql("SELECT pg_reload_conf()")
        self.pg.create_database("template_chaos")
        db = open_database(self.pg.url_for("template_chaos"))
        migrate(db)
        db.dispose()
        self.registry = Registry(root / "registry")
        self.registry.start()
        self.engine: DockerEngine | None = None
        self.base_image = ""
        if builds:
            self.engine = DockerEngine(root / "engine")
            self.engine.start()
            self.base_image = f"{self.registry.host}/busybox:1"
            self.engine.import_busybox(self.base_image)
            self.engine.push(self.base_image)
        self.count = 0

    def database(self) -> tuple[str, Database]:
        self.count += 1
        url = self.pg.create_database(f"soak{self.count}", template="template_chaos")
        return url, open_database(url)

    def stop(self) -> None:
        for service in (self.engine, self.registry, self.pg):
            if service is not None:
                try:
                    service.stop()
                except Exception as exc:  # stop the others
                    log(f"stopping {service.name}: {exc}")


_CHECK = "promotions.status, promotions.worker, promotions.epoch"
_PG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC")
_PUT_TAG = re.compile(
    r'time="([^"]+)".*http\.request\.method=PUT.*http\.request\.uri="?/v2/chaos-[0-9a-f]+/'
    r'(dev|prod)/manifests/(dev|prod)"?\s.*http\.response\.duration=([0-9.]+)(ms|µs|s)'
)


def fence_windows(pg_log: Path, registry_log: Path, since: dt.datetime) -> list[float]:
    """Milliseconds from each fenced claim check to the start of the tag PUT that follows it."""
    checks = []
    for line in pg_log.read_text(errors="replace").splitlines():
        if _CHECK in line and (m := _PG_TIME.match(line)):
            checks.append(dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.UTC))
    checks.sort()
    windows = []
    for line in registry_log.read_text(errors="replace").splitlines():
        if "response completed" not in line or not (m := _PUT_TAG.search(line)):
            continue
        done = dt.datetime.fromisoformat(m.group(1)[:26].rstrip("Z") + "+00:00")
        if done < since:
            continue
        scale = {"ms": 1e-3, "µs": 1e-6, "s": 1.0}[m.group(5)]
        started = done - dt.timedelta(seconds=float(m.group(4)) * scale)
        before = [c for c in checks if c <= started]
        if before:
            windows.append((started - before[-1]).total_seconds() * 1000)
    return windows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--promotion-kills", type=int, default=200)
    parser.add_argument("--build-kills", type=int, default=60)
    parser.add_argument("--freezes", type=int, default=2, help="SIGSTOP rounds per step")
    parser.add_argument("--minutes", type=float, default=30.0, help="the whole soak's time limit")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-builds", action="store_true", help="no Docker engine: promotions only")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    print(f"chaos soak, seed {seed} (replay with --seed {seed}); {code_version()}; {machine_load()}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="chaos-soak-"))
    os.environ.pop("PIPELINE_CONFIG", None)
    services: Services | None = None
    reports: list[tuple[str, harness.ChaosReport]] = []
    freezes: list[harness.Freeze] = []
    windows: list[float] = []
    budget = args.minutes * 60
    started = time.monotonic()
    try:
        with time_limit(budget + 300):
            services = Services(root, builds=not args.no_builds)
            since = dt.datetime.now(dt.UTC)
            url, db = services.database()
            setup, ids = harness.promotion_setup(
                root / "promotions", db, url, services.registry.host, secrets.token_hex(3), images=10
            )
            share = budget * (0.6 if args.no_builds else 0.4)
            reports.append(
                (
                    "promotions",
                    harness.kill_promotions(setup, ids, kills=args.promotion_kills, seed=seed, budget_seconds=share),
                )
            )
            log(reports[-1][1].summary())
            db.dispose()
            windows = fence_windows(services.pg.log_path, services.registry.log_path, since)
            if services.engine is not None:
                url, db = services.database()
                setup = harness.build_setup(
                    root / "builds",
                    db,
                    url,
                    services.registry.host,
                    services.engine.host,
                    services.base_image,
                    secrets.token_hex(3),
                )
                left = max(60.0, budget * 0.8 - (time.monotonic() - started))
                reports.append(
                    ("builds", harness.kill_builds(setup, kills=args.build_kills, seed=seed, budget_seconds=left))
                )
                log(reports[-1][1].summary())
                db.dispose()
            rng = random.Random(seed)
            for round_no in range(args.freezes):
                for step in ("copy-image", "sign", "git-push", "move-tag"):
                    if time.monotonic() - started > budget:
                        break
                    url, db = services.database()
                    setup, ids = harness.promotion_setup(
                        root / f"freeze-{round_no}-{step}",
                        db,
                        url,
                        services.registry.host,
                        secrets.token_hex(3),
                        images=6,
                    )
                    freezes.append(harness.freeze_promotion(setup, ids, step, rng))
                    log(f"freeze {step}: {freezes[-1]}")
                    db.dispose()
    except OutOfTime as exc:
        print(f"stopped: {exc}", flush=True)
    finally:
        harness.stop_git_hosts()
        if services is not None:
            services.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.monotonic() - started
    print()
    rows = []
    for name, report in reports:
        rows.append(
            [
                name,
                len(report.kills),
                f"{report.seconds:.0f}",
                report.jobs,
                len(report.problems),
                ", ".join(f"{k} {n}" for k, n in sorted(report.landed().items())),
            ]
        )
    print(table(["scenario", "kills", "seconds", "jobs", "problems", "landed"], rows))
    for name, report in reports:
        for problem in report.problems:
            print(f"PROBLEM {name}: {problem}")
    print(
        table(
            ["freeze in", "finished while frozen", "waited on a lock", "problems"],
            [[f.step, f.finished_while_frozen, f.waited_on_lock, len(f.problems)] for f in freezes],
        )
    )
    for freeze in freezes:
        for problem in freeze.problems:
            print(f"PROBLEM freeze {freeze.step}: {problem}")
    if windows:
        ordered = sorted(windows)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(
            f"fencing window (claim check -> tag PUT starts), {len(windows)} tag moves: median "
            f"{median(windows):.1f} ms, p99 {p99:.1f} ms, max {ordered[-1]:.1f} ms"
        )
    print(f"seed {seed}; {elapsed:.0f} s in all; {machine_load()}")
    bad = sum(len(r.problems) for _, r in reports) + sum(len(f.problems) for f in freezes)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
