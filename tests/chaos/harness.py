"""Chaos for the job lifecycle: real ``pipeline worker`` processes killed (SIGKILL) or frozen
(SIGSTOP) in the middle of a step, against PostgreSQL, a real registry and real Git; then what
the service promises is checked from the outside.

Shared by ``tests/chaos`` (the CI-sized form) and ``bench/chaos_soak.py`` (the long one).

Where a job is comes from the database and the registry, never from hooks in the product:

* a promotion writes its ``steps`` after each step, so the step it is in is the first of its
  environment's steps not recorded as succeeded;
* a build is in ``checkout`` while its ``engine`` is not recorded yet, in ``build`` until its
  immutable ``{sha}`` tag answers in the registry, in ``push`` until its provenance
  (``sha256-<hex>.att``) answers, then in ``record`` until the row says ``succeeded``.

A kill aims at a step and lands after a random, seeded delay within that step's usual length
(learned from the steps already finished); where it really landed is read back the same way
once the process is gone, and that is what gets counted.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import select

from pipeline import promotion
from pipeline.config import Config, parse_config
from pipeline.registry import MANIFEST_TYPES
from pipeline.signing import generate_key_pair
from pipeline.store import Build, Database, Promotion, builds, projects, promotions
from tests.git_server import GitHttpServer
from tests.gitrepo import GitRepo
from tests.images import OciLayout, skopeo_push
from tests.seed import succeeded_builds
from tests.services import skopeo_inspect

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "chaos-signing-password"
PROJECT = "chaos"
LEASE_SECONDS, REAP_SECONDS = 2, 1
# what each environment runs, in order (README: verify, copy, signatures, sign, Git, the tag)
PROMOTION_STEPS = {
    "dev": ("copy-image", "copy-signatures", "sign", "git-push", "move-tag"),
    "prod": ("verify-signature", "copy-image", "copy-signatures", "sign", "git-push", "move-tag"),
}
BUILD_STEPS = ("checkout", "build", "push", "record")
VALUES = 'image:\n  repository: example/app  # set by the pipeline\n  digest: ""\nreplicas: 2\n'


def say(message: str) -> None:
    """Progress on stderr (pytest shows it with -s and on failure)."""
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- worker processes --------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    pid: int
    log: Path
    config: Path

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return Path(f"/proc/{self.pid}").exists() and _state(self.pid) != "Z"

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "Z"
    return stat[stat.rfind(")") + 2]


def worker_pid(name: str | None) -> int | None:
    """The pid in a worker's name (``host:pid:xxxx``, workers._lease.QueueWorker)."""
    if not name:
        return None
    parts = name.split(":")
    return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None


class Fleet:
    """Worker processes forked by ``tests.chaos.zygote`` (one import, many real processes),
    each the leader of its own session, killed or frozen by process group."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
        with open(root / "zygote.log", "ab") as log:  # the fork server keeps its own copy of the descriptor
            self._zygote = subprocess.Popen(
                [sys.executable, "-m", "tests.chaos.zygote"],
                cwd=ROOT,
                env={**clean, **env},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                text=True,
            )
        assert self._zygote.stdout is not None
        ready = self._zygote.stdout.readline().strip()
        if ready != "ready":
            raise RuntimeError(f"the fork server did not start: {ready!r}; see {root / 'zygote.log'}")
        self.workers: list[WorkerProcess] = []
        self._count = 0

    def spawn(self, config: Path, *args: str) -> WorkerProcess:
        """A new ``pipeline worker --config CONFIG ARGS`` process."""
        assert self._zygote.stdin is not None and self._zygote.stdout is not None
        self._count += 1
        log = self.root / f"worker-{self._count:03d}.log"
        request = {"args": ["worker", "--config", str(config), *args], "log": str(log), "env": {}}
        self._zygote.stdin.write(json.dumps(request) + "\n")
        self._zygote.stdin.flush()
        worker = WorkerProcess(int(self._zygote.stdout.readline()), log, config)
        self.workers.append(worker)
        return worker

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.alive()]

    def by_pid(self, pid: int | None) -> WorkerProcess | None:
        return next((w for w in self.workers if w.pid == pid), None)

    def kill(self, worker: WorkerProcess) -> None:
        """SIGKILL the worker and its children (git, docker), and wait until they are gone."""
        self.signal(worker, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while worker.alive():
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {worker.pid} outlived SIGKILL")
            time.sleep(0.002)

    def signal(self, worker: WorkerProcess, sig: int) -> None:
        try:
            os.killpg(worker.pid, sig)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        """SIGCONT and SIGTERM every worker, SIGKILL what outlives 20 s, then the fork server."""
        for worker in self.alive():
            self.signal(worker, signal.SIGCONT)
            self.signal(worker, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        for worker in self.alive():
            self.signal(worker, signal.SIGKILL)
        if self._zygote.stdin is not None:
            self._zygote.stdin.close()
        try:
            self._zygote.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._zygote.pid, signal.SIGKILL)
            self._zygote.wait(timeout=10)


# -- the service under test ---------------------------------------------------------------------


@dataclass
class Setup:
    """One scenario's service: a config (one file per worker, each its own data dir, as separate
    machines would have), its database, registry and deploy repository."""

    root: Path
    db: Database
    database_url: str
    registry_host: str
    data: dict[str, Any]
    deploy: GitRepo | None = None
    source: GitRepo | None = None
    base_image: str = ""  # what a build's Dockerfile starts FROM
    _configs: int = 0

    @property
    def config(self) -> Config:
        return parse_config(self.data)

    def worker_config(self) -> Path:
        """A config file for one more worker process: the same service, a data dir of its own."""
        self._configs += 1
        path = self.root / f"worker-{self._configs:03d}.yaml"
        data = {**self.data, "data_dir": str(self.root / f"data-{self._configs:03d}")}
        path.write_text(yaml.safe_dump(data))
        return path


def signing_keys(root: Path) -> tuple[Path, Path]:
    """A cosign key pair; workers read its password from COSIGN_PASSWORD."""
    return generate_key_pair(root / "keys", PASSWORD.encode())


def worker_settings(**more: Any) -> dict[str, Any]:
    """A short lease and reaper, so a dead worker's job is taken again within seconds."""
    return {
        "lease_seconds": LEASE_SECONDS,
        "reap_seconds": REAP_SECONDS,
        "poll_seconds": 0.2,
        "max_attempts": 50,
        "retry_seconds": 0.2,
        **more,
    }


def _served(root: Path) -> GitHttpServer:
    """The deploy repository behind a Git host of its own (smart HTTP, in this process), as a
    real one is: over ``file://`` the pusher runs receive-pack itself, so a worker killed mid-push
    would take the server side with it and leave ``refs/heads/main.lock`` behind for good, which
    no Git host does. ``stop_git_hosts`` stops them (the chaos conftest, at the session's end)."""
    subprocess.run(["git", "-C", str(root / "remote.git"), "config", "http.receivepack", "true"], check=True)
    server = GitHttpServer(root).start()
    _GIT_HOSTS.append(server)
    return server


_GIT_HOSTS: list[GitHttpServer] = []


def stop_git_hosts() -> None:
    """Stop the deploy repositories' Git hosts: their threads would keep the process alive."""
    while _GIT_HOSTS:
        _GIT_HOSTS.pop().stop()


def promotion_setup(
    root: Path,
    db: Database,
    database_url: str,
    registry_host: str,
    run: str,
    images: int = 8,
    layer_bytes: int = 3_000_000,
) -> tuple[Setup, list[int]]:
    """A project whose dev (signs, writes Git) feeds prod (verifies, signs, writes Git; auto),
    ``images`` succeeded builds of distinct images pushed with skopeo; their build ids."""
    key, pub = signing_keys(root)
    deploy = GitRepo.create(root / "deploy")
    deploy.commit({"dev/values.yaml": VALUES, "prod/values.yaml": VALUES}, "initial")
    deploy_url = _served(root / "deploy").url_for("remote")
    source = f"chaos-{run}/src"

    def gitops(env: str) -> dict[str, Any]:
        return {"repo": deploy_url, "path": f"{env}/values.yaml", "key": "image.digest"}

    data = {
        "data_dir": str(root / "data"),
        "database_url": database_url,
        "worker": worker_settings(),
        "signing": {"key_file": str(key)},
        "registries": {"local": {"url": registry_host, "insecure": True}},
        "projects": {
            PROJECT: {
                "repo": "https://git.example.com/acme/chaos.git",
                "allow_unsigned": True,
                "image": {"registry": "local", "repository": source},
                "environments": [
                    {
                        "name": "dev",
                        "registry": "local",
                        "repository": f"chaos-{run}/dev",
                        "sign": True,
                        "gitops": gitops("dev"),
                    },
                    {
                        "name": "prod",
                        "registry": "local",
                        "repository": f"chaos-{run}/prod",
                        "requires": "dev",
                        "auto": True,
                        "verify": [str(pub)],
                        "sign": True,
                        "gitops": gitops("prod"),
                    },
                ],
            }
        },
    }
    setup = Setup(root, db, database_url, registry_host, data, deploy=deploy)
    layout = OciLayout(root / "oci")
    target = _HostOnly(registry_host)
    digests = []
    for n in range(images):
        layout.tag(f"i{n}", layout.image([layer_bytes, 200_000], seed=7000 + n, gzip_level=1))
        digests.append(skopeo_push(layout, f"i{n}", target, source))  # type: ignore[arg-type]
    return setup, succeeded_builds(db, setup.config, PROJECT, digests)


@dataclass
class _HostOnly:
    """What ``skopeo_push`` needs of a plain-HTTP registry: its host."""

    host: str
    cert_dir: None = None


# -- reading state ------------------------------------------------------------------------------


def promotion_rows(db: Database) -> list[Promotion]:
    with db.session() as session:
        return list(session.scalars(select(Promotion).where(Promotion.project == PROJECT).order_by(Promotion.id)))


def build_rows(db: Database) -> list[Build]:
    with db.session() as session:
        return list(session.scalars(select(Build).where(Build.project == PROJECT).order_by(Build.id)))


def next_step(row: Promotion) -> str | None:
    """The step a running promotion is in: the first of its environment's not yet succeeded."""
    done = {s.get("kind") for s in row.steps or [] if s.get("status") == "succeeded"}
    return next((kind for kind in PROMOTION_STEPS[row.environment] if kind not in done), None)


class RegistryProbe:
    """The registry API, read directly: what a tag points at (``None`` when absent)."""

    def __init__(self, host: str) -> None:
        self.http = httpx.Client(base_url=f"http://{host}", timeout=10)

    def digest(self, repository: str, tag: str) -> str | None:
        answer = self.http.head(f"/v2/{repository}/manifests/{tag}", headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.headers.get("Docker-Content-Digest")

    def layers(self, repository: str, tag: str) -> list[dict[str, Any]]:
        answer = self.http.get(f"/v2/{repository}/manifests/{tag}", headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if answer.status_code == 404:
            return []
        answer.raise_for_status()
        return list(answer.json().get("layers") or [])

    def close(self) -> None:
        self.http.close()


def git_log(repo: GitRepo, branch: str = "main") -> list[tuple[str, str]]:
    """(commit, message) of every commit on ``branch``, newest first."""
    out = subprocess.run(
        ["git", "--git-dir", str(repo.bare), "log", "--format=%H%x00%B%x1e", branch],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = []
    for entry in out.split("\x1e"):
        if "\x00" in entry:
            commit, message = entry.strip("\n").split("\x00", 1)
            found.append((commit.strip(), message))
    return found


def git_show(repo: GitRepo, path: str, branch: str = "main") -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo.bare), "show", f"{branch}:{path}"], capture_output=True, text=True, check=True
    ).stdout


# -- the kills ----------------------------------------------------------------------------------


@dataclass
class Kill:
    """One SIGKILL: the step aimed at, where it landed (read back), and on which job."""

    aimed: str
    landed: str
    job: str
    delay_ms: float
    pid: int


@dataclass
class ChaosReport:
    seed: int
    kills: list[Kill] = field(default_factory=list)
    seconds: float = 0.0
    jobs: int = 0
    problems: list[str] = field(default_factory=list)

    def landed(self) -> Counter[str]:
        return Counter(k.landed for k in self.kills)

    def summary(self) -> str:
        spread = ", ".join(f"{step} {n}" for step, n in sorted(self.landed().items()))
        return (
            f"seed {self.seed}: {len(self.kills)} kills in {self.seconds:.1f} s over {self.jobs} jobs; "
            f"landed: {spread}; problems: {len(self.problems)}"
        )


class StepTimes:
    """How long each step usually takes (median of what finished), to aim a kill inside it."""

    def __init__(self, defaults: dict[str, float]) -> None:
        self.defaults = defaults
        self.seen: dict[str, list[float]] = {}

    def add(self, step: str, seconds: float) -> None:
        self.seen.setdefault(step, []).append(seconds)
        del self.seen[step][:-20]

    def typical(self, step: str) -> float:
        values = self.seen.get(step)
        return statistics.median(values) if values else self.defaults.get(step, 0.05)


@contextmanager
def _fleet(setup: Setup, workers: int, args: Sequence[str]) -> Iterator[tuple[Fleet, Callable[[], None]]]:
    fleet = Fleet(setup.root / "workers", {"COSIGN_PASSWORD": PASSWORD})

    def top_up() -> None:
        while len(fleet.alive()) < workers:
            fleet.spawn(setup.worker_config(), *args)

    try:
        top_up()
        yield fleet, top_up
    finally:
        fleet.close()


def kill_promotions(
    setup: Setup, build_ids: Sequence[int], *, kills: int, seed: int, workers: int = 3, budget_seconds: float = 120.0
) -> ChaosReport:
    """Promote to dev again and again (prod follows automatically) while SIGKILL lands in every
    step of both environments; then let the survivors finish and check everything."""
    rng, report, started = random.Random(seed), ChaosReport(seed), time.monotonic()
    config, db = setup.config, setup.db
    targets = [f"{env}:{step}" for env, steps in PROMOTION_STEPS.items() for step in steps]
    every_step = {step for steps in PROMOTION_STEPS.values() for step in steps}
    hits: Counter[str] = Counter()
    times = StepTimes({"copy-image": 0.15, "sign": 0.3, "git-push": 0.3})
    seen_done: set[int] = set()
    order = list(build_ids)
    rng.shuffle(order)
    requested = [0]

    def demand(rows: list[Promotion]) -> None:
        """Keep one dev promotion waiting, unless prod lags behind (its queue would only grow)."""
        waiting = Counter(r.environment for r in rows if r.status == "pending")
        if waiting["dev"] or waiting["prod"] > 1:
            return
        build_id = order[requested[0] % len(order)]
        requested[0] += 1
        with db.session() as session:
            promotion.request_promotion(session, config, PROJECT, "dev", build_id=build_id, actor="chaos")

    def learn(rows: list[Promotion]) -> None:
        for row in rows:
            if row.status == "succeeded" and row.id not in seen_done:
                seen_done.add(row.id)
                for step in row.steps or []:
                    start, end = step.get("started_at"), step.get("finished_at")
                    if start and end:
                        times.add(step["kind"], _seconds(start, end))

    def victim() -> tuple[Promotion, WorkerProcess, str] | None:
        """A running promotion at one of the least-hit steps (any environment that runs now:
        waiting for one step while its environment waits out a dead worker's lease is slow)."""
        rows = promotion_rows(db)
        demand(rows)
        learn(rows)
        fewest = min(hits[t] for t in targets)
        found = []
        for row in rows:
            target = f"{row.environment}:{next_step(row)}"
            if row.status == "running" and target in targets and hits[target] <= fewest + 1:
                worker = fleet.by_pid(worker_pid(row.worker))
                if worker is not None and worker.alive():
                    found.append((hits[target], row.id, row, worker, target))
        if not found:
            return None
        lowest = min(f[0] for f in found)
        _, _, row, worker, target = rng.choice(sorted(f for f in found if f[0] == lowest)[:4])
        return row, worker, target

    with _fleet(setup, workers, ("--builds", "0", "--promotions", "1")) as (fleet, top_up):
        while time.monotonic() - started < budget_seconds:
            covered = {k.landed.split(":")[1] for k in report.kills}
            if len(report.kills) >= kills and covered >= every_step:
                break
            found = _wait_for(victim, seconds=10)
            if found is None:
                continue
            row, worker, target = found
            hits[target] += 1
            step = target.split(":")[1]
            delay = rng.uniform(0, times.typical(step))
            time.sleep(delay)
            fleet.kill(worker)
            after = next(r for r in promotion_rows(db) if r.id == row.id)
            still = after.status == "running" and after.worker == row.worker
            landed = f"{row.environment}:{next_step(after) or 'finish'}" if still else f"{row.environment}:after"
            report.kills.append(Kill(target, landed, f"promotion {row.id}", delay * 1000, worker.pid))
            top_up()
        say(f"promotion kills done: {len(report.kills)}; waiting for the queue to drain")
        _drain(db, promotion_rows, lambda r: r.status in ("pending", "running"), fleet)
    report.seconds = time.monotonic() - started
    rows = promotion_rows(db)
    report.jobs = len(rows)
    report.problems = promotion_problems(setup, rows)
    return report


def _seconds(start: str, end: str) -> float:
    import datetime as dt

    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def _wait_for(check: Callable[[], Any], *, seconds: float, every: float = 0.003) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (found := check()) is not None:
            return found
        time.sleep(every)
    return None


def _drain(
    db: Database,
    rows: Callable[[Database], Sequence[Any]],
    busy: Callable[[Any], bool],
    fleet: Fleet,
    seconds: float = 90,
) -> None:
    """Wait until no job is waiting or running (workers stay up: the reaper runs in them)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(busy(r) for r in rows(db)):
            return
        time.sleep(0.1)
    stuck = [f"{r.id}:{r.status}:{r.worker}" for r in rows(db) if busy(r)]
    tails = "\n".join(f"--- {w.log}\n{w.tail(15)}" for w in fleet.alive())
    raise AssertionError(f"jobs still waiting or running {seconds:.0f} s after the last kill: {stuck}\n{tails}")


# -- what must hold afterwards ------------------------------------------------------------------


def promotion_problems(setup: Setup, rows: Sequence[Promotion]) -> list[str]:
    """0 lost, 0 duplicated, the registry and Git agree with the database; each problem in words."""
    problems = []
    config, deploy = setup.config, setup.deploy
    assert deploy is not None
    lost = [f"promotion {r.id} ({r.environment}) is {r.status}: {r.error}" for r in rows if r.status != "succeeded"]
    problems += lost
    dev = [r for r in rows if r.environment == "dev" and r.status == "succeeded"]
    for arrived in dev:
        follow = [
            r.id for r in rows if r.environment == "prod" and r.reason == f"arrived in dev by promotion {arrived.id}"
        ]
        if len(follow) != 1:
            problems.append(f"dev promotion {arrived.id} was followed by {len(follow)} prod promotions {follow}")
    probe = RegistryProbe(setup.registry_host)
    commits = git_log(deploy)
    by_promotion: dict[int, list[str]] = {}
    for commit, message in commits:
        if match := re.search(r"^promotion: (\d+) ", message, re.M):
            by_promotion.setdefault(int(match.group(1)), []).append(commit)
    try:
        with setup.db.session() as session:
            for env in PROMOTION_STEPS:
                current = promotions.current(session, PROJECT, env)
                location = config.project(PROJECT).environment(env)
                tag = location.tag.format(environment=env)
                ref = f"{setup.registry_host}/{location.repository}:{tag}"
                in_registry = (
                    skopeo_inspect(ref, tls_verify=False)["Digest"]
                    if current
                    else probe.digest(location.repository, tag)
                )
                if (current.digest if current else None) != in_registry:
                    problems.append(
                        f"{ref} is {in_registry} but the database says {env} runs {current.digest if current else None}"
                    )
                in_git = yaml.safe_load(git_show(deploy, f"{env}/values.yaml"))["image"]["digest"] or None
                if in_git != (current.digest if current else None):
                    problems.append(f"Git says {env} runs {in_git}, the database {current.digest if current else None}")
    finally:
        probe.close()
    for row in rows:
        made = by_promotion.get(row.id, [])
        if len(made) > 1:
            problems.append(f"promotion {row.id} wrote {len(made)} Git commits: {made}")
        changed = row.status == "succeeded" and row.previous_digest != row.digest
        if changed and len(made) != 1:
            problems.append(f"promotion {row.id} changed {row.environment} but wrote {len(made)} commits")
    if unknown := set(by_promotion) - {r.id for r in rows}:
        problems.append(f"Git commits name promotions the database does not have: {sorted(unknown)}")
    return problems


# -- builds -------------------------------------------------------------------------------------


def build_setup(
    root: Path, db: Database, database_url: str, registry_host: str, engine_host: str, base_image: str, run: str
) -> Setup:
    """A project built from a real Git repository on the Docker engine, signed provenance (so
    the push step has work that shows in the registry), moving tags ``main`` and ``latest``,
    and a dev environment promoted automatically from every build."""
    key, _ = signing_keys(root)
    source = GitRepo.create(root / "source")
    repository = f"chaos-{run}/app"
    data = {
        "data_dir": str(root / "data"),
        "database_url": database_url,
        "worker": worker_settings(),
        "docker": {"hosts": [engine_host]},
        "signing": {"key_file": str(key)},
        "registries": {"local": {"url": registry_host, "insecure": True}},
        "projects": {
            PROJECT: {
                "repo": source.url,
                "branches": ["main"],
                "allow_unsigned": True,
                "build": {"network": "host"},
                "image": {"registry": "local", "repository": repository},
                "tags": ["{sha}", "{branch}", "latest"],
                "environments": [{"name": "dev", "registry": "local", "repository": f"chaos-{run}/dev", "auto": True}],
            }
        },
    }
    return Setup(root, db, database_url, registry_host, data, source=source, base_image=base_image)


def next_commit(setup: Setup, n: int) -> str:
    """A commit whose image differs from every other (its own payload), with a build step slow
    enough to be killed in."""
    assert setup.source is not None
    dockerfile = (
        f"FROM {setup.base_image}\nCOPY payload.txt /payload.txt\nRUN sleep 0.5 && cat /payload.txt > /built.txt\n"
    )
    return setup.source.commit(
        {"Dockerfile": dockerfile, "payload.txt": f"chaos build {n} {time.time_ns()}\n"}, f"change {n}"
    )


def build_step(row: Build, probe: RegistryProbe, repository: str) -> str | None:
    """The step a running build is in, from its row and the registry (see the module docstring)."""
    if row.status != "running":
        return None
    if not row.engine:
        return "checkout"
    digest = probe.digest(repository, row.commit)
    if digest is None:
        return "build"
    if probe.digest(repository, digest.replace(":", "-") + ".att") is None:
        return "push"
    return "record"


def kill_builds(
    setup: Setup, *, kills: int, seed: int, workers: int = 3, in_flight: int = 4, budget_seconds: float = 120.0
) -> ChaosReport:
    """Builds of new commits, one after another, while SIGKILL lands in checkout, build, push
    and record; then let the survivors finish and check everything."""
    rng, report, started = random.Random(seed), ChaosReport(seed), time.monotonic()
    db, config = setup.db, setup.config
    repository = config.project(PROJECT).image.repository
    probe = RegistryProbe(setup.registry_host)
    hits: Counter[str] = Counter()
    times = StepTimes({"checkout": 0.15, "build": 2.5, "push": 0.15, "record": 0.08})
    commits = [0]

    def demand(rows: list[Build]) -> None:
        if sum(r.status in ("queued", "running") for r in rows) >= in_flight:
            return
        commits[0] += 1
        sha = next_commit(setup, commits[0])
        with db.session() as session:
            projects.sync_projects(session, config.projects)
            builds.create_build(
                session, project=PROJECT, commit=sha, ref="refs/heads/main", branch="main", trigger="chaos"
            )

    def victim() -> tuple[Build, WorkerProcess, str] | None:
        rows = build_rows(db)
        demand(rows)
        fewest = min(hits[t] for t in BUILD_STEPS)
        found = []
        for row in rows:
            if row.status != "running" or row.attempts != 1:  # a retry's earlier tags would mislead
                continue
            step = build_step(row, probe, repository)
            if step in BUILD_STEPS and hits[step] <= fewest:
                worker = fleet.by_pid(worker_pid(row.worker))
                if worker is not None and worker.alive():
                    found.append((row, worker, step))
        return rng.choice(found) if found else None

    try:
        with _fleet(setup, workers, ("--builds", "1", "--promotions", "1")) as (fleet, top_up):
            while time.monotonic() - started < budget_seconds:
                if len(report.kills) >= kills and set(report.landed()) >= set(BUILD_STEPS):
                    break
                found = _wait_for(victim, seconds=20, every=0.005)
                if found is None:
                    continue
                row, worker, step = found
                hits[step] += 1
                delay = rng.uniform(0, times.typical(step))
                time.sleep(delay)
                fleet.kill(worker)
                after = next(r for r in build_rows(db) if r.id == row.id)
                landed = (build_step(after, probe, repository) if after.worker == row.worker else None) or "after"
                report.kills.append(Kill(step, landed, f"build {row.id}", delay * 1000, worker.pid))
                top_up()
            say(f"build kills done: {len(report.kills)}; waiting for the queue to drain")
            _drain(db, build_rows, lambda r: r.status in ("queued", "running"), fleet)
            _drain(db, promotion_rows, lambda r: r.status in ("pending", "running"), fleet)
        report.seconds = time.monotonic() - started
        rows = build_rows(db)
        report.jobs = len(rows)
        report.problems = build_problems(setup, config, rows, probe)
    finally:
        probe.close()
    return report


def build_problems(setup: Setup, config: Config, rows: Sequence[Build], probe: RegistryProbe) -> list[str]:
    """0 lost builds, one automatic promotion each, every tag where the database says, one
    provenance statement per image."""
    problems = [f"build {r.id} is {r.status}: {r.error}" for r in rows if r.status != "succeeded"]
    repository = config.project(PROJECT).image.repository
    promoted = promotion_rows(setup.db)
    problems += [f"promotion {r.id} is {r.status}: {r.error}" for r in promoted if r.status != "succeeded"]
    for row in rows:
        follow = [p.id for p in promoted if p.reason == f"build {row.id} of main succeeded"]
        if row.status == "succeeded" and len(follow) != 1:
            problems.append(f"build {row.id} was followed by {len(follow)} automatic promotions {follow}")
        if row.digest and (found := probe.digest(repository, row.commit)) != row.digest:
            problems.append(f"{repository}:{row.commit[:12]}… is {found}, build {row.id} recorded {row.digest}")
        if row.digest:
            layers = probe.layers(repository, row.digest.replace(":", "-") + ".att")
            if len(layers) != 1:
                problems.append(f"build {row.id}: {len(layers)} provenance statements for {row.digest}")
    newest = max((r for r in rows if r.status == "succeeded"), key=lambda r: r.id, default=None)
    for tag in ("main", "latest"):
        ref = f"{setup.registry_host}/{repository}:{tag}"
        found = skopeo_inspect(ref, tls_verify=False)["Digest"] if newest else probe.digest(repository, tag)
        if found != (newest.digest if newest else None):
            problems.append(
                f"{ref} is {found}, but the newest build ({newest.id if newest else None}) made "
                f"{newest.digest if newest else None}"
            )
    with setup.db.session() as session:
        current = promotions.current(session, PROJECT, "dev")
    dev = config.project(PROJECT).environment("dev")
    in_registry = probe.digest(dev.repository, "dev")
    if (current.digest if current else None) != in_registry:
        problems.append(f"dev tag is {in_registry}, the database says {current.digest if current else None}")
    return problems


# -- a worker frozen past its lease ---------------------------------------------------------------


@dataclass
class Freeze:
    """One SIGSTOP round: where the worker froze, what happened while it was frozen."""

    step: str
    frozen: int  # the promotion the frozen worker held
    newer: int  # the promotion requested after it
    finished_while_frozen: bool  # the other worker finished both while the first was frozen
    waited_on_lock: bool  # if not: the other worker waited for a lock the frozen one holds (or gave it back)
    late_log: str  # what the frozen worker logged about its job after SIGCONT
    problems: list[str] = field(default_factory=list)


def _request(setup: Setup, env: str, build_id: int) -> int:
    with setup.db.session() as session:
        return promotion.request_promotion(session, setup.config, PROJECT, env, build_id=build_id, actor="chaos").id


def _row(db: Database, promotion_id: int) -> Promotion:
    return next(r for r in promotion_rows(db) if r.id == promotion_id)


def freeze_promotion(
    setup: Setup, build_ids: Sequence[int], step: str, rng: random.Random, *, frozen_for: float = 15.0
) -> Freeze:
    """Worker A promotes to dev and is frozen (SIGSTOP, with its children) in ``step``; worker B
    takes the promotion over once the lease expired and finishes it, then a newer one; then A
    is woken (SIGCONT). A must touch nothing: no tag moved back, no late Git commit, no write
    to the row. Builds are promoted in pairs (frozen, newer), the next pair when the worker had
    already left the step when the signal landed."""
    db = setup.db
    with _fleet(setup, 0, ()) as (fleet, _):
        a = fleet.spawn(setup.worker_config(), "--builds", "0", "--promotions", "1")
        for attempt in range(0, len(build_ids) - 1, 2):
            first = _request(setup, "dev", build_ids[attempt])
            at = _wait_for(
                lambda: r if (r := _row(db, first)).status == "running" and next_step(r) == step else None,
                seconds=30,
                every=0.002,
            )
            if at is None:
                raise AssertionError(f"promotion {first} never ran {step}: {_row(db, first).steps}\n{a.tail()}")
            time.sleep(rng.uniform(0, 0.03))
            fleet.signal(a, signal.SIGSTOP)
            _wait_for(lambda: True if _state(a.pid) == "T" else None, seconds=5, every=0.001)
            held = _row(db, first)
            if held.status == "running" and held.worker == at.worker and next_step(held) == step:
                break
            say(f"worker {a.pid} was past {step} of promotion {first} when it froze; again")
            fleet.signal(a, signal.SIGCONT)
            _drain(db, promotion_rows, lambda r: r.status in ("pending", "running"), fleet)
        else:
            raise AssertionError(f"never froze a worker inside {step}")
        frozen_steps = [s["kind"] for s in held.steps if s.get("status") == "succeeded"]
        say(f"froze worker {a.pid} in {step} of promotion {first} (done: {frozen_steps})")
        second = build_ids[attempt + 1]
        fleet.spawn(setup.worker_config(), "--builds", "0", "--promotions", "1")  # b, to take the promotion over
        taken = _wait_for(
            lambda: r if (r := _row(db, first)).status == "succeeded" else None, seconds=frozen_for, every=0.05
        )
        newer = _request(setup, "dev", second)
        finished = (
            taken is not None
            and _wait_for(
                lambda: r if (r := _row(db, newer)).status == "succeeded" else None, seconds=frozen_for, every=0.05
            )
            is not None
        )
        if finished:
            _drain(db, promotion_rows, lambda r: r.status in ("pending", "running"), fleet)
        # the other worker is blocked on the lock now, or gave the job back after a lease of waiting
        waiting = not finished and (
            _advisory_waits(db) > 0 or "is held by another worker" in (_row(db, first).error or "")
        )
        if not finished:
            say(
                f"promotion {first}/{newer} did not finish while worker {a.pid} was frozen: "
                f"{_row(db, first).status}/{_row(db, newer).status}; a worker waits for an advisory lock: {waiting}"
            )
        fleet.signal(a, signal.SIGCONT)
        late = _wait_for(lambda: _late_line(a, first), seconds=15, every=0.05)
        _drain(db, promotion_rows, lambda r: r.status in ("pending", "running"), fleet)
        time.sleep(LEASE_SECONDS)  # anything A would still do, it has done by now
        rows = promotion_rows(db)
        problems = promotion_problems(setup, rows)
        mine = _row(db, first)
        # its process may claim the promotion again once woken (a new epoch, legitimately): only
        # the frozen claim itself must never have finished it
        if mine.epoch == held.epoch:
            problems.append(f"promotion {first} was finished by the frozen worker's claim {held.epoch} ({mine.worker})")
        if late is None:
            problems.append(f"the frozen worker never said it lost promotion {first}:\n{a.tail()}")
        return Freeze(step, first, newer, finished, waiting, late or "", problems)


def _late_line(worker: WorkerProcess, promotion_id: int) -> str | None:
    pattern = re.compile(rf"promotion {promotion_id}\b.*(lease lost|no longer held|taken over)", re.I)
    try:
        text = worker.log.read_text(errors="replace")
    except OSError:
        return None
    return next((line for line in text.splitlines() if pattern.search(line)), None)


def _advisory_waits(db: Database) -> int:
    """Sessions of this database waiting for an advisory lock (the tag fence, the Git lock)."""
    from sqlalchemy import text

    with db.session() as session:
        return int(
            session.execute(
                text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                    "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()"
                )
            ).scalar_one()
        )
