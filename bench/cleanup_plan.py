"""The registry cleanup at scale: a seeded history of 500 builds on 20 branches, planned (dry run)
and then run against a real registry (distribution 2.8, deletes enabled) and a real Git repository.

Prints what was kept (by rule) and deleted, how long the plan and the run took, and the ratio of
the run's time per deleted image to a baseline measured in the same process: plain
``DELETE /v2/<repo>/manifests/<digest>`` calls for as many images of a twin repository, no
checks, no locks, no signatures. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import _common  # noqa: F401  (puts the project on sys.path)
from _common import OutOfTime, Stopwatch, code_version, machine_load, table, time_limit

from pipeline import cleanup
from pipeline.config import Config, parse_config
from pipeline.registry import RegistryClient, delete_manifest
from pipeline.store import Database, migrate, open_database, projects, promotions
from tests.seed import push_image, push_signatures, record_build
from tests.services import Registry

BRANCHES, PER_BRANCH, DELETED_BRANCHES = 20, 25, 5


def _fast_import(bare: Path, branches: int, per_branch: int) -> dict[str, list[str]]:
    """A repository with ``branches`` branches of ``per_branch`` commits each on one root, a tag
    every 40th commit; branch -> commits oldest first."""
    lines, mark = [], 0
    lines += ["commit refs/heads/main", "mark :1", "committer B <b@example.com> 1700000000 +0000", "data 4", "root", ""]
    mark = 1
    marks: dict[str, list[int]] = {}
    for b in range(branches):
        branch = "main" if b == 0 else f"feature-{b:02d}"
        parent = 1
        for n in range(per_branch):
            mark += 1
            body = f"{branch} {n}"
            lines += [f"commit refs/heads/{branch}", f"mark :{mark}"]
            lines += [f"committer B <b@example.com> {1700000000 + mark} +0000", f"data {len(body)}", body]
            lines += [f"from :{parent}", f"M 644 inline {branch}.txt", f"data {len(body)}", body, ""]
            marks.setdefault(branch, []).append(mark)
            parent = mark
            if mark % 40 == 0:
                lines += [f"reset refs/tags/v{mark}", f"from :{mark}", ""]
    subprocess.run(["git", "init", "--bare", "--quiet", str(bare)], check=True)
    subprocess.run(
        ["git", "-C", str(bare), "fast-import", "--quiet", "--export-marks=marks"],
        input="\n".join(lines).encode() + b"\n",
        check=True,
    )
    by_mark = dict(line.split() for line in (bare / "marks").read_text().splitlines())
    return {branch: [by_mark[f":{m}"] for m in ms] for branch, ms in marks.items()}


def _config(data_dir: Path, registry: Registry, repo: Path, run: str) -> Config:
    return parse_config(
        {
            "data_dir": str(data_dir),
            "registries": {"local": {"url": registry.host, "insecure": True}},
            "projects": {
                "demo": {
                    "repo": f"file://{repo}",
                    "allow_unsigned": True,
                    "image": {"registry": "local", "repository": f"bench/{run}"},
                    "environments": [
                        {"name": "dev", "registry": "local", "repository": f"bench/dev-{run}"},
                        {"name": "prod", "registry": "local", "repository": f"bench/prod-{run}"},
                    ],
                }
            },
        }
    )


def _seed(db: Database, config: Config, client: RegistryClient, commits: dict[str, list[str]]) -> list[str]:
    """500 builds, one per commit, ages spread over 60 days (newest commits youngest), 10 % signed,
    30 promotions; the digests, in build order."""
    rng = random.Random(20)
    repository = config.projects["demo"].image.repository
    with db.session() as session:
        projects.sync_projects(session, config.projects)
    digests, rows = [], []
    for branch, shas in commits.items():
        for n, sha in enumerate(shas):
            age = dt.timedelta(days=60 * (len(shas) - n) / len(shas), hours=rng.random())
            tags = [f"{branch}-{sha[:7]}"] + ([branch] if n == len(shas) - 1 else [])
            digest = push_image(client, repository, f"{repository}-{sha}", tags)
            if rng.random() < 0.1:
                push_signatures(client, repository, digest)
            rows.append(record_build(db, "demo", sha, branch, digest, tags=tags, age=age))
            digests.append(digest)
    with db.session() as session:
        for env in ("dev", "prod"):
            for i in sorted(rng.sample(range(len(rows)), 15)):
                promotions.add_promotion(
                    session,
                    project="demo",
                    environment=env,
                    digest=digests[i],
                    build_id=rows[i],
                    actor="bench",
                    status="succeeded",
                    finished_at=dt.datetime.now(dt.UTC),
                )
    return digests


def _rule(reason: str) -> str:
    for words, rule in (
        ("was deleted in Git", "deleted: branch deleted in Git"),
        ("not among", "deleted: old commit of a live branch"),
        ("on no branch or tag", "deleted: commit on no branch or tag"),
        ("runs in", "promotion (runs now)"),
        ("ran in", "promotion (ran recently)"),
        ("checked again", "kept by the check before the delete"),
        ("promotion ", "promotion (waiting)"),
        ("Git tag", "Git tag"),
        ("last 10 commits", "last 10 commits of a branch"),
        ("within the", "built within 7 days"),
        ("same digest", "same digest as a kept build"),
    ):
        if words in reason:
            return rule
    return reason[:40]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 branches of 10 commits, to check that it works")
    parser.add_argument("--time-limit", type=float, default=900)
    args = parser.parse_args()
    branches, per_branch = (5, 10) if args.quick else (BRANCHES, PER_BRANCH)
    print(code_version())
    print("before:", machine_load())
    root = Path(tempfile.mkdtemp(prefix="bench-cleanup-"))
    registry = Registry(root / "registry")
    try:
        with time_limit(args.time_limit):
            registry.start()
            commits = _fast_import(root / "repo.git", branches, per_branch)
            gone = [b for b in commits if b != "main"][-DELETED_BRANCHES:]
            db = open_database(f"sqlite:///{root / 'pipeline.db'}")
            migrate(db)
            config = _config(root / "data", registry, root / "repo.git", "history")
            twin = config.projects["demo"].image.repository + "-twin"
            with RegistryClient(config.registries["local"]) as client, Stopwatch() as seeding:
                digests = _seed(db, config, client, commits)
                for sha in (s for shas in commits.values() for s in shas):
                    push_image(client, twin, f"{twin}-{sha}", [])
            for branch in gone:  # merged and deleted: their images become eligible after 7 days
                subprocess.run(
                    ["git", "-C", str(root / "repo.git"), "branch", "-D", branch], check=True, capture_output=True
                )
            print(
                f"seeded {len(digests)} builds on {len(commits)} branches ({len(gone)} deleted since) in {seeding.seconds:.1f} s"
            )
            with Stopwatch() as planning:
                dry = cleanup.clean_project(db, config, "demo", dry_run=True)
            with Stopwatch() as running:
                real = cleanup.clean_project(db, config, "demo", dry_run=False)
            same = [(d.build_id, d.action) for d in dry.decisions] == [(d.build_id, d.action) for d in real.decisions]
            deleted = [d for d in real.decisions if d.action == "delete"]
            with RegistryClient(config.registries["local"]) as client:  # pushed while seeding: digests only
                twin_digests = [push_image(client, twin, f"{twin}-{d.commit}", []) for d in deleted]
            with RegistryClient(config.registries["local"]) as client, Stopwatch() as baseline:
                for digest in twin_digests:
                    delete_manifest(client, twin, digest)
            rules = Counter(_rule(d.reason) for d in real.decisions)
            print(table(["decision", "builds"], sorted(rules.items(), key=lambda kv: -kv[1])))
            print(
                table(
                    ["measure", "value"],
                    [
                        ("builds", len(real.decisions)),
                        ("kept", len(real.decisions) - len(deleted)),
                        ("deleted", len(deleted)),
                        ("images deleted", len(real.deleted)),
                        ("signatures deleted with them", sum(len(d.signatures) for d in real.deleted)),
                        ("dry run = real run", str(same)),
                        ("plan (dry run) s", planning.seconds),
                        ("run (plan + deletes) s", running.seconds),
                        ("baseline: plain deletes s", baseline.seconds),
                        ("errors", len(real.errors) + (1 if real.refused else 0)),
                    ],
                )
            )
            if deleted:
                per_image = (running.seconds - planning.seconds) / len(deleted)
                plain = baseline.seconds / len(deleted)
                print(f"ratio run time per deleted image / plain DELETE per image = {per_image / plain:.2f}")
            print(f"ratio run / dry run = {running.seconds / planning.seconds:.2f}")
    except OutOfTime as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return 1
    finally:
        registry.stop(remove=True)
        shutil.rmtree(root, ignore_errors=True)
        print("after:", machine_load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
