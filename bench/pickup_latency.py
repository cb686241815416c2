"""Benchmark: instant pickup and promotion through the REST API (issue 14).

Three figures, each with a baseline measured in the same run, on this 2-core machine, all on
127.0.0.1 (goals in brackets):

a. Re-promotion of a digest the environment already runs: POST /api/v1/promotions until a
   client polling GET /api/v1/promotions/{id} every 10 ms sees ``succeeded``; median of
   ``--repeat``                                                                   [<= 100 ms]
   Baseline: the same flow where the worker learns of new work only by polling once a second
   (``worker.poll_seconds: 1``): `pipeline api` and `pipeline worker` as separate processes
   on SQLite, which has no NOTIFY (before issue 14 every setup behaved like this, ~1,400 ms).
b. Webhook accepted (202) -> the build is ``running`` (seen the same way), median, on
   PostgreSQL (`pipeline api` + `pipeline worker`: LISTEN/NOTIFY across processes) and on
   SQLite (`pipeline serve`: the in-process wake-up)                                [<= 50 ms]
   The builds then fail fast (their commit is not in the repository): only pickup counts.
c. Promotion of a 210 MB image (4 incompressible layers, 120 + 50 + 30 + 10 MB, generated
   with ``bench/promotion_copy.py``'s helpers) through the API into an empty registry, request
   -> ``succeeded``, divided by ``skopeo copy --preserve-digests`` of the same image into
   another empty registry, median of ``--runs`` each, interleaved                   [<= 0.9]

Every deployment has ``worker.poll_seconds: 1``: what makes the others fast is the wake-up.

    cd /work/main && uv run python bench/pickup_latency.py [--repeat 20] [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import ROOT, OutOfTime, Stopwatch, code_version, machine_load, median, ratio_line, table, time_limit
from intake_load import ServerProcess
from promotion_copy import MB, SIZES, Image, finish_image, submit_layers

from tests.gitrepo import GitRepo
from tests.images import OciLayout, skopeo_push
from tests.services import SKOPEO, Postgres, Registry, free_port, run, skopeo_inspect
from tests.webhooks import github_delivery, github_push

GOAL_REPROMOTE_MS, GOAL_PICKUP_MS, GOAL_COPY_RATIO = 100.0, 50.0, 0.9
SECRET_ENV, SECRET = "BENCH_WEBHOOK_SECRET", "pickup-bench-secret"
PROJECT, REPO = "app", "bench/app"
POLL = 0.01  # the client's polling interval


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Deployment:
    """One way of running the service: its processes, database and config."""

    name: str
    database: str  # "sqlite" or "postgresql"
    split: bool  # `pipeline api` + `pipeline worker` (else one `pipeline serve`)
    big_envs: list[str] = field(default_factory=list)
    servers: list[ServerProcess] = field(default_factory=list)
    url: str = ""
    db_url: str = ""

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.registries: list[Registry] = []
        self.pg: Postgres | None = None
        self.deployments: list[Deployment] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")} | {SECRET_ENV: SECRET}
        self.source_repo = GitRepo.create(workdir / "git")
        self.source_repo.commit({"Dockerfile": "FROM scratch\n"}, "initial")

    def registry(self, name: str) -> Registry:
        registry = Registry(self.workdir / f"reg-{name}")
        registry.start()
        self.registries.append(registry)
        return registry

    def stop(self) -> None:
        for deployment in self.deployments:
            deployment.stop()
        for registry in self.registries:
            registry.stop()
        if self.pg is not None:
            self.pg.stop()

    # -- the service -----------------------------------------------------------------------

    def config(self, dep: Deployment, source: Registry, targets: dict[str, Registry]) -> Path:
        registries = {"src": {"url": source.host, "insecure": True}} | {
            name: {"url": reg.host, "insecure": True} for name, reg in targets.items()
        }
        environments = [{"name": "stage", "registry": "src", "repository": f"{dep.name}/stage"}] + [
            {"name": env, "registry": env, "repository": f"{dep.name}/{env}"} for env in dep.big_envs
        ]
        data = {
            "data_dir": str(self.workdir / dep.name / "data"),
            "database_url": dep.db_url,
            "api": {"auth": False},
            "worker": {"poll_seconds": 1.0, "lease_seconds": 60, "reap_seconds": 15, "max_attempts": 1},
            "registries": registries,
            "projects": {
                PROJECT: {
                    "repo": self.source_repo.url,
                    "webhook_secret_env": SECRET_ENV,
                    "branches": ["main"],
                    "allow_unsigned": True,
                    "image": {"registry": "src", "repository": REPO},
                    "environments": environments,
                }
            },
        }
        path = self.workdir / dep.name / "pipeline.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))  # JSON is YAML
        return path

    def start(self, dep: Deployment, config: Path, digests: list[str]) -> None:
        migrate = subprocess.run(
            [sys.executable, "-m", "pipeline", "migrate", "--config", str(config)],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"{dep.name}: pipeline migrate failed: {migrate.stderr.decode()[-2000:]}")
        self.seed_builds(dep, config, digests)
        port = free_port()
        base = [sys.executable, "-m", "pipeline"]
        if dep.split:
            worker = ServerProcess(
                f"{dep.name} worker",
                [*base, "worker", "--config", str(config), "--builds", "1", "--promotions", "1"],
                self.env,
                self.workdir / dep.name / "worker.log",
                port,
            )
            api = ServerProcess(
                f"{dep.name} api",
                [*base, "api", "--config", str(config), "--port", str(port), "--processes", "1"],
                self.env,
                self.workdir / dep.name / "api.log",
                port,
            )
            api.start()
            assert worker.log is not None
            with open(worker.log, "ab") as out:  # no HTTP port of its own: started, then given time
                worker.proc = subprocess.Popen(
                    worker.args,
                    env=worker.env,
                    cwd=ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            dep.servers += [api, worker]
            self.wait_worker_ready(worker)
        else:
            serve = ServerProcess(
                f"{dep.name} serve",
                [
                    *base,
                    "serve",
                    "--config",
                    str(config),
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                    "--promotion-workers",
                    "1",
                ],
                self.env,
                self.workdir / dep.name / "serve.log",
                port,
            )
            serve.start()
            dep.servers.append(serve)
        dep.url = f"http://127.0.0.1:{port}"

    def wait_worker_ready(self, worker: ServerProcess, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "started" in worker.log.read_text(errors="replace"):
                time.sleep(0.5)  # past its first (empty) claim
                return
            time.sleep(0.1)
        raise RuntimeError(f"{worker.name} did not start")

    def seed_builds(self, dep: Deployment, config: Path, digests: list[str]) -> None:
        """Succeeded builds of the images skopeo pushed, straight into the database."""
        from pipeline.config import load_config
        from pipeline.store import open_database
        from tests.seed import succeeded_builds

        db = open_database(dep.db_url)
        succeeded_builds(db, load_config(config), PROJECT, digests)
        db.dispose()

    # -- the flows -------------------------------------------------------------------------

    def until(
        self, http: httpx.Client, path: str, done: set[str], started: float, timeout: float = 600
    ) -> tuple[float, dict[str, Any]]:
        """Poll ``path`` every 10 ms until its status is in ``done``; seconds since ``started``."""
        while True:
            body = http.get(path).json()
            if body.get("status") in done:
                return time.perf_counter() - started, body
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"{path} still {body.get('status')} after {timeout:.0f} s")
            time.sleep(POLL)

    def promote(self, http: httpx.Client, env: str, build_id: int) -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        answer = http.post("/api/v1/promotions", json={"project": PROJECT, "environment": env, "build_id": build_id})
        answer.raise_for_status()
        seconds, body = self.until(
            http, f"/api/v1/promotions/{answer.json()['id']}", {"succeeded", "failed", "rejected"}, started
        )
        if body["status"] != "succeeded":
            raise RuntimeError(f"promotion {body['id']} to {env} {body['status']}: {body.get('error')}")
        return seconds, body

    def repromote(self, dep: Deployment) -> list[float]:
        with httpx.Client(base_url=dep.url, headers={"X-Pipeline-Actor": "bench"}, timeout=30) as http:
            self.promote(http, "stage", 1)  # the first one copies; not timed
            times = [self.promote(http, "stage", 1)[0] * 1000 for _ in range(self.args.repeat)]
        log(f"{dep.name}: re-promotion median {median(times):.1f} ms")
        return times

    def webhooks(self, dep: Deployment) -> list[float]:
        times = []
        with httpx.Client(base_url=dep.url, headers={"X-Pipeline-Actor": "bench"}, timeout=30) as http:
            for n in range(self.args.repeat):
                after = uuid.uuid4().hex + uuid.uuid4().hex[:8]
                payload = github_push("acme/app", self.source_repo.url, after=after, message=f"bench {n}")
                body, headers = github_delivery(payload, SECRET)
                started = time.perf_counter()
                answer = http.post("/webhooks/github", content=body, headers=headers)
                if answer.status_code != 202:
                    raise RuntimeError(f"webhook answered {answer.status_code}: {answer.text}")
                build_id = answer.json()["build_ids"][0]
                seconds, _ = self.until(
                    http,
                    f"/api/v1/builds/{build_id}",
                    {"running", "succeeded", "failed", "cancelled", "superseded", "skipped"},
                    started,
                )
                times.append(seconds * 1000)
                self.until(
                    http, f"/api/v1/builds/{build_id}", {"succeeded", "failed", "cancelled", "skipped"}, started
                )  # the worker is idle again before the next delivery
        log(f"{dep.name}: webhook -> running median {median(times):.1f} ms")
        return times


def big_image(bench: Bench, source: Registry) -> Image:
    """The 210 MB image of bench/promotion_copy.py (its generator), pushed with skopeo."""
    sizes = SIZES["quick" if bench.args.quick else "full"]["image"]
    image = Image("big", REPO, sizes, seed=14)
    layout = OciLayout(bench.workdir / "layout")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork")) as pool:
        jobs = submit_layers(pool, layout, [image])
        layers = {i: future.result() for _, i, future in jobs}
    finish_image(layout, image, [layers[i] for i in range(len(sizes))])
    skopeo_push(layout, "big", source, REPO)
    shutil.rmtree(layout.root)
    log(f"big image {image.digest}: {image.compressed_bytes / MB:.0f} MB in the source")
    return image


def skopeo_copy(bench: Bench, source: Registry, image: Image, target: Registry) -> float:
    with Stopwatch() as sw:
        run(
            [
                SKOPEO,
                "copy",
                "--preserve-digests",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                f"docker://{source.host}/{REPO}@{image.digest}",
                f"docker://{target.host}/{REPO}:copied",
            ],
            env={**os.environ, "HOME": str(bench.workdir)},
            timeout=300,
        )
    return sw.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20, help="timed re-promotions and webhooks per deployment")
    parser.add_argument("--runs", type=int, default=3, help="big promotions and skopeo copies each")
    parser.add_argument("--quick", action="store_true", help="a 50 MB image instead of 210 MB")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pickup-bench-"))
    bench = Bench(args, workdir)
    print(f"pickup latency benchmark; {code_version()}; {machine_load()}", flush=True)
    try:
        with time_limit(1500):
            source = bench.registry("source")
            layout = OciLayout(workdir / "small")
            layout.tag("small", layout.image([200_000], seed=1))
            small = skopeo_push(layout, "small", source, REPO)
            image = big_image(bench, source)
            ours = {f"big{n}": bench.registry(f"ours{n}") for n in range(1, args.runs + 1)}
            theirs = [bench.registry(f"skopeo{n}") for n in range(1, args.runs + 1)]
            bench.pg = Postgres(workdir / "pg")
            bench.pg.start()
            deployments = [
                Deployment("serve-sqlite", "sqlite", split=False),
                Deployment("split-postgres", "postgresql", split=True, big_envs=list(ours)),
                Deployment("baseline-split-sqlite-poll-1s", "sqlite", split=True),
            ]
            for dep in deployments:
                dep.db_url = (
                    bench.pg.create_database(dep.name.replace("-", "_"))
                    if dep.database == "postgresql"
                    else f"sqlite:///{workdir / dep.name / 'pipeline.db'}"
                )
                (workdir / dep.name).mkdir(exist_ok=True)
                config = bench.config(dep, source, ours if dep.big_envs else {})
                bench.start(dep, config, [small, image.digest])
                bench.deployments.append(dep)
                log(f"{dep.name} at {dep.url}")
            repromotion = {dep.name: bench.repromote(dep) for dep in deployments}
            pickup = {dep.name: bench.webhooks(dep) for dep in deployments}
            split = deployments[1]
            copies: dict[str, list[float]] = {"ours": [], "skopeo": []}
            with httpx.Client(base_url=split.url, headers={"X-Pipeline-Actor": "bench"}, timeout=30) as http:
                for n, (env, target) in enumerate(zip(ours, theirs, strict=True), start=1):
                    order = ["ours", "skopeo"] if n % 2 else ["skopeo", "ours"]
                    for kind in order:
                        if kind == "ours":
                            seconds, body = bench.promote(http, env, 2)
                            landed = skopeo_inspect(body["target_ref"].rsplit("@", 1)[0], tls_verify=False)["Digest"]
                            assert landed == image.digest, (landed, image.digest)
                        else:
                            seconds = skopeo_copy(bench, source, image, target)
                        copies[kind].append(seconds)
                        log(f"run {n}: {kind} {seconds:.2f} s")
    except OutOfTime as exc:
        print(f"stopped: {exc}", flush=True)
        return 2
    finally:
        bench.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    base = "baseline-split-sqlite-poll-1s"
    print()
    print("a. re-promotion of a digest the environment runs, POST -> succeeded seen (10 ms polling), ms")
    rows = [[name, median(t), min(t), max(t), median(t) / median(repromotion[base])] for name, t in repromotion.items()]
    print(table(["deployment", "median", "min", "max", "/ baseline"], rows))
    print("b. webhook 202 -> build running seen (10 ms polling), ms")
    rows = [[name, median(t), min(t), max(t), median(t) / median(pickup[base])] for name, t in pickup.items()]
    print(table(["deployment", "median", "min", "max", "/ baseline"], rows))
    mb = image.compressed_bytes / MB
    print(f"c. {mb:.0f} MB image into an empty registry, s (median of {args.runs})")
    print(
        table(["how", "median", "runs"], [[k, median(v), " ".join(f"{x:.2f}" for x in v)] for k, v in copies.items()])
    )
    print()
    ok = True
    for name in ("serve-sqlite", "split-postgres"):
        value = median(repromotion[name])
        ok &= value <= GOAL_REPROMOTE_MS
        print(
            f"re-promotion {name}: {value:.1f} ms  (goal <= {GOAL_REPROMOTE_MS:.0f} ms: "
            f"{'met' if value <= GOAL_REPROMOTE_MS else 'NOT met'}); baseline {median(repromotion[base]):.0f} ms, "
            f"ratio {value / median(repromotion[base]):.3f}"
        )
    for name in ("serve-sqlite", "split-postgres"):
        value = median(pickup[name])
        ok &= value <= GOAL_PICKUP_MS
        print(
            f"webhook -> running {name}: {value:.1f} ms  (goal <= {GOAL_PICKUP_MS:.0f} ms: "
            f"{'met' if value <= GOAL_PICKUP_MS else 'NOT met'}); baseline {median(pickup[base]):.0f} ms, "
            f"ratio {value / median(pickup[base]):.3f}"
        )
    ratio = median(copies["ours"]) / median(copies["skopeo"])
    ok &= ratio <= GOAL_COPY_RATIO
    print(ratio_line("promotion via API / skopeo copy", ratio, f"<= {GOAL_COPY_RATIO}", ratio <= GOAL_COPY_RATIO))
    print(machine_load())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
