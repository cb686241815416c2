"""Benchmark: how fast the service turns a push into an image on a BuildKit daemon, against
doing it by hand on the same daemon.

Everything runs on this machine, offline: two BuildKit daemons (``tests.buildkit_service``,
buildkitd v0.32 on unix sockets, reached through buildx's remote driver), a private Docker engine
(``tests.services.DockerEngine``, for the push-direct comparison), a CNCF registry, a local Git
repository and the service's own build path, an in-process ``BuildWorker`` on a SQLite database
(``tests.project.run_build``). The project builds a multi-stage Dockerfile FROM a busybox base
that does real CPU work (dd/gzip/sha256sum/awk loops) and COPYs its source late, so that a
one-file change only rebuilds the last layers.

Four ratios, medians of 3 runs (1 with ``--quick``), goals in brackets:

1. service cold build (queue -> row succeeded: checkout, build, push straight from BuildKit with
   the registry cache export, registry digest check) / the same commit built by hand on the same
   pruned daemon: ``git clone URL dir && git -C dir checkout SHA && docker buildx --builder B
   build --provenance=false --network host --push -t REF dir``                       [<= 1.05]
2. service rebuild after a one-file change, same daemon / service cold build            [<= 0.10]
3. service rebuild after a one-file change on a second, pruned daemon, which gets its cache from
   the registry cache the first one exported (``<repository>:buildcache``) / cold build  [<= 0.25]
4. service cold build on the daemon (push-direct) / service cold build on the engine (buildx's
   docker driver: build, load into the engine, ``docker push``)                       [reported]

Before every cold build the daemon's (or engine's) build cache is removed, and every run pushes
to fresh repository names, so no layer of the build (and no registry cache) is there yet.

    cd /work/main && uv run python bench/build_speed.py [--quick] [--runs N] [--verbose]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/x.py` puts bench/, not the project, on sys.path
    sys.path.insert(0, str(ROOT))

from pipeline.build import LogSink  # noqa: E402
from pipeline.build import _job as build_job  # noqa: E402
from pipeline.config import Config, parse_config  # noqa: E402
from pipeline.store import Database, builds, migrate, open_database  # noqa: E402
from tests import project  # noqa: E402
from tests.buildkit_service import BuildkitDaemon  # noqa: E402
from tests.gitrepo import GitRepo  # noqa: E402
from tests.services import DOCKER, DockerEngine, Registry  # noqa: E402
from tests.tools import BUILDX_DOCKER_CONFIG, tool  # noqa: E402

GOALS = {
    "service / hand-run (cold)": 1.05,
    "rebuild / cold (same daemon)": 0.10,
    "fresh daemon with registry cache / cold": 0.25,
    "push-direct / engine build+load+push": None,
}

# ---------------------------------------------------------------------------------------------
# The project being built
# ---------------------------------------------------------------------------------------------

DOCKERFILE = r"""FROM @BASE@ AS deps
# "install dependencies": libraries (incompressible) and data tables (compressible)
RUN busybox mkdir -p /opt/deps && cd /opt/deps && i=0 && \
    while [ $i -lt @PARTS@ ]; do \
      busybox dd if=/dev/urandom bs=1M count=@BLOB_MB@ 2>/dev/null \
        | busybox gzip -9 > lib$i.so.gz && \
      busybox seq $((i * @LINES@)) $((i * @LINES@ + @LINES@)) \
        | busybox gzip -9 > table$i.txt.gz && \
      i=$((i + 1)); \
    done
RUN cd /opt/deps && for f in *.gz; do busybox gunzip -c $f | busybox sha256sum; done > SHA256SUMS

FROM deps AS build
# "compile": every round reads all tables, transforms and recompresses them
RUN busybox mkdir -p /opt/build && cd /opt/build && r=0 && \
    while [ $r -lt @ROUNDS@ ]; do \
      busybox cat /opt/deps/table*.txt.gz | busybox gunzip -c | busybox sed "s/^/r$r:/" \
        | busybox gzip -9 > out$r.gz && r=$((r + 1)); \
    done
RUN cd /opt/build && busybox sha256sum out*.gz > SHA256SUMS

FROM @BASE@ AS assets
# "bundle assets", in parallel with the stages above
RUN busybox mkdir -p /srv/assets && cd /srv/assets && i=0 && \
    while [ $i -lt @ASSETS@ ]; do \
      busybox seq 1 @LINES@ | busybox awk -v s=$i '{ print (s * $1) % 7919, $1, s }' \
        | busybox gzip -9 > asset$i.gz && i=$((i + 1)); \
    done

FROM @BASE@
RUN busybox mkdir -p /app/bin /app/data
COPY --from=deps /opt/deps /app/deps
COPY --from=build /opt/build /app/build
COPY --from=assets /srv/assets /app/assets
RUN busybox sha256sum /app/deps/* /app/build/* /app/assets/* > /app/MANIFEST
COPY src/ /app/src/
RUN cd /app/src && busybox sha256sum * > /app/src.sha256 \
    && busybox tar -cf - . | busybox gzip -9 > /app/src.tar.gz
WORKDIR /app
CMD ["/bin/sh"]
"""

# Sized for ~20-40 s cold (full) and ~5-10 s (quick) on this 2-core machine.
SIZES = {
    "full": {"PARTS": 10, "BLOB_MB": 4, "LINES": 400_000, "ROUNDS": 3, "ASSETS": 8},
    "quick": {"PARTS": 4, "BLOB_MB": 2, "LINES": 250_000, "ROUNDS": 2, "ASSETS": 3},
}


def dockerfile(base_image: str, size: str) -> str:
    text = DOCKERFILE.replace("@BASE@", base_image)
    for key, value in SIZES[size].items():
        text = text.replace(f"@{key}@", str(value))
    return text


def warmup_files(base_image: str) -> dict[str, str | bytes]:
    """A tiny second project in the same repository, built once per engine before measuring."""
    return {
        "warmup/Dockerfile": f"FROM {base_image}\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\n",
        "warmup/hello.txt": "warm-up\n",
    }


def source_files(run: int, revision: int) -> dict[str, str | bytes]:
    """A small application: the one-file change touches src/app.py only."""
    files: dict[str, str | bytes] = {
        f"src/module{n:02d}.py": f"# module {n}\n"
        + "".join(f"def f{n}_{k}(x):\n    return x * {k} + {n}\n" for k in range(40))
        for n in range(12)
    }
    files["src/app.py"] = f"# run {run}, revision {revision}\nVERSION = '{run}.{revision}'\n"
    files["README.md"] = "benchmark project\n"
    return files


# ---------------------------------------------------------------------------------------------
# Observing the service: when each build log line was produced (the DB keeps 0.5 s batches)
# ---------------------------------------------------------------------------------------------

LINE_TIMES: dict[int, list[tuple[float, str]]] = {}


class _TimedSink(LogSink):
    """The service's own LogSink, plus a precise timestamp for every line it is handed."""

    def __init__(self, db: Database, build_id: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(db, build_id, *args, **kwargs)
        self.bench_build_id = build_id
        LINE_TIMES[build_id] = []

    def __call__(self, line: str) -> None:
        LINE_TIMES[self.bench_build_id].append((time.perf_counter(), line))
        super().__call__(line)


build_job.LogSink = _TimedSink  # type: ignore[misc]  # observation only (the job makes its sink); behaviour unchanged

_VERTEX_NAME = re.compile(r"^#(\d+) (.+)$")  # a vertex's first line is its name
_VERTEX_DONE = re.compile(r"^#(\d+) DONE (\d+(?:\.\d+)?)s$")
_PUSH_DIGEST = re.compile(r"digest: sha256:[0-9a-f]{64} size: \d+")


def vertex_times(lines: Sequence[str]) -> dict[str, float]:
    """BuildKit's own duration of every vertex (plain progress: "#N name" ... "#N DONE 1.2s")."""
    names: dict[str, str] = {}
    done: dict[str, float] = {}
    for line in lines:
        if m := _VERTEX_DONE.match(line):
            done[m[1]] = float(m[2])
        elif (m := _VERTEX_NAME.match(line)) and m[1] not in names:
            names[m[1]] = m[2]
    out: dict[str, float] = {}
    for num, seconds in done.items():
        name = normalize(names.get(num, f"#{num}"))
        out[name] = out.get(name, 0.0) + seconds
    return out


def normalize(name: str) -> str:
    name = re.sub(r"127\.0\.0\.1:\d+/[\w./-]+(?:[:@][\w:.-]+)?", "<image>", name)
    name = re.sub(r"sha256:[0-9a-f]{12,}", "<digest>", name)
    name = re.sub(r"\s+", " ", name)
    return name if len(name) <= 72 else name[:69] + "..."


def service_phases(t0: float, t_end: float, lines: list[tuple[float, str]]) -> dict[str, float]:
    """Split queue -> succeeded into phases by the lines the build stage and the Docker CLI print."""

    def first(pred: Any, start: int = 0) -> int | None:
        return next((i for i in range(start, len(lines)) if pred(lines[i][1])), None)

    phases: dict[str, float] = {}
    i_checkout = first(lambda s: s.startswith("checking out "))
    i_build = first(lambda s: s.startswith("$ docker "))
    i_push = first(lambda s: s.startswith("The push refers to repository"))
    i_pushed = first(lambda s: s.startswith("pushed ") and "the registry reports" in s)
    i_steps = first(lambda s: s.startswith("steps: "))
    if i_push is None and None not in (i_checkout, i_build, i_pushed, i_steps):
        return _push_direct_phases(t0, t_end, lines, i_checkout, i_build, i_pushed, i_steps)  # type: ignore[arg-type]
    if None in (i_checkout, i_build, i_push, i_pushed, i_steps):
        return {"total": t_end - t0}
    assert i_checkout is not None and i_build is not None and i_push is not None
    assert i_pushed is not None and i_steps is not None
    t = [x[0] for x in lines]
    phases["claim + start"] = t[i_checkout] - t0
    phases["checkout + spec + engine"] = t[i_build] - t[i_checkout]
    phases["docker build"] = t[i_push - 1] - t[i_build]
    digests = [i for i in range(i_push, i_pushed) if _PUSH_DIGEST.search(lines[i][1])]
    previous = t[i_push - 1]
    for n, index in enumerate(digests, 1):
        phases[f"docker push tag {n}"] = t[index] - previous
        previous = t[index]
    phases["registry digest check"] = t[i_pushed] - previous
    i_insight = first(lambda s: s.startswith("image: ") and "layers" in s, i_steps)
    after = t[i_steps]
    if i_insight is not None:
        phases["insight"] = t[i_insight] - t[i_steps]
        after = t[i_insight]
    phases["finish (logs, cleanup, row)"] = t_end - after
    phases["total"] = t_end - t0
    return phases


def _push_direct_phases(
    t0: float, t_end: float, lines: list[tuple[float, str]], i_checkout: int, i_build: int, i_pushed: int, i_steps: int
) -> dict[str, float]:
    """BuildKit pushed by itself: one build-and-push phase, then the registry digest check."""
    t = [x[0] for x in lines]
    i_last = max(i for i in range(i_build, i_pushed) if lines[i][1].startswith("#") or i == i_build)
    return {
        "claim + start": t[i_checkout] - t0,
        "checkout + spec + builder": t[i_build] - t[i_checkout],
        "buildx build --push (+ cache export)": t[i_last] - t[i_build],
        "registry digest check": t[i_pushed] - t[i_last],
        "finish (logs, cleanup, row)": t_end - t[i_steps],
        "total": t_end - t0,
    }


# ---------------------------------------------------------------------------------------------
# Builders, baseline, service
# ---------------------------------------------------------------------------------------------


def image_id(engine: DockerEngine, ref: str) -> str:
    return engine.docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.decode().strip()


def prune(engine: DockerEngine, keep: str) -> None:
    """Remove every image but ``keep`` (an image id), then all build cache."""
    ids = engine.docker("image", "ls", "--all", "--quiet", "--no-trunc").stdout.decode().split()
    drop = [i for i in dict.fromkeys(ids) if i != keep]
    if drop:
        engine.docker("image", "rm", "--force", *drop)
    engine.docker("builder", "prune", "--all", "--force")


@dataclass
class Timed:
    seconds: float
    phases: dict[str, float]
    vertices: dict[str, float]
    row: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)


def cpu_snapshot() -> dict[str, float]:
    """CPU seconds so far: the whole machine busy (user+nice+system+irq+softirq), stolen by
    the hypervisor, and used by this process and the children it waited for (CLI, git)."""
    with open("/proc/stat") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    own = os.times()
    return {
        "machine busy": (ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]) / hz,
        "steal": (ticks[7] if len(ticks) > 7 else 0) / hz,
        "this process + CLI children": own.user + own.system + own.children_user + own.children_system,
    }


def cpu_since(before: dict[str, float]) -> dict[str, float]:
    after = cpu_snapshot()
    return {key: after[key] - value for key, value in before.items()}


def prune_daemon(daemon: BuildkitDaemon) -> None:
    """Remove everything the daemon keeps (layers, cache mounts): a cold daemon, same process."""
    done = daemon.buildctl("prune", "--all", timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"buildctl prune failed: {done.stderr[-2000:]}")


def hand_run_buildx(builder: str, url: str, sha: str, ref: str, workdir: Path) -> tuple[Timed, str]:
    """The baseline on the daemon: clone, then ``docker buildx build --push`` as someone would
    at a shell, through a buildx remote builder made once beforehand (same daemon, same commit)."""
    dest = workdir / "clone"
    shutil.rmtree(dest, ignore_errors=True)
    steps = [
        ("git clone", ["git", "clone", "--quiet", url, str(dest)]),
        ("git checkout", ["git", "-C", str(dest), "checkout", "--quiet", "--detach", sha]),
        (
            "docker build",
            [
                DOCKER,
                "buildx",
                "--builder",
                builder,
                "build",
                "--progress=plain",
                "--provenance=false",
                "--network",
                "host",
                "--push",
                "-t",
                ref,
                str(dest),
            ],
        ),
    ]
    phases: dict[str, float] = {}
    output: list[str] = []
    cpu = cpu_snapshot()
    for name, cmd in steps:
        started = time.perf_counter()
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
            env={**os.environ, "BUILDX_CONFIG": str(workdir / "hand-buildx")},
        )
        phases[name] = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} exited {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}")
        if name == "docker build":
            output = (done.stdout + done.stderr).splitlines()
    phases["total"] = sum(phases.values())
    used = cpu_since(cpu)
    shutil.rmtree(dest, ignore_errors=True)
    return Timed(phases["total"], phases, vertex_times(output), cpu=used), " && ".join(shlex.join(c) for _, c in steps)


def make_hand_builder(daemon: BuildkitDaemon, workdir: Path) -> str:
    """``docker buildx create --driver remote`` for the hand-run, once (not measured)."""
    subprocess.run(
        [DOCKER, "buildx", "create", "--name", "hand", "--driver", "remote", daemon.address],
        check=True,
        capture_output=True,
        env={**os.environ, "BUILDX_CONFIG": str(workdir / "hand-buildx")},
    )
    return "hand"


def service_build(db: Database, config: Config, sha: str, name: str) -> Timed:
    """Queue one build and work it with an in-process worker, timed to the succeeded row."""
    cpu = cpu_snapshot()
    started = time.perf_counter()
    row = project.run_build(db, config, sha, project=name)
    ended = time.perf_counter()
    used = cpu_since(cpu)
    if row.status != "succeeded":
        with db.session() as session:
            tail = [x.line for x in builds.read_logs(session, row.id)][-30:]
        raise RuntimeError(f"build {row.id} {row.status}: {row.error}\n" + "\n".join(tail))
    lines = LINE_TIMES.get(row.id, [])
    info = {
        "id": row.id,
        "engine": row.engine,
        "steps_total": row.steps_total,
        "steps_cached": row.steps_cached,
        "cache_from": list(row.cache_from or []),
        "image": row.image,
        "image_size": row.image_size,
    }
    return Timed(
        ended - started, service_phases(started, ended, lines), vertex_times([x[1] for x in lines]), info, used
    )


def make_config(data: dict[str, Any], builder: dict[str, Any]) -> Config:
    """The bench config building on one builder (``{name, buildkit|docker}``)."""
    return parse_config({**{k: v for k, v in data.items() if k != "docker"}, "builders": [builder]})


def config_data(workdir: Path, registry: Registry, repo: GitRepo, runs: int, insight: bool) -> dict[str, Any]:
    """tests/project.py's demo config, one project per run so every cold build has no
    predecessor (no --cache-from) and pushes to a repository the registry has never seen."""
    data = project.config_data(
        data_dir=workdir / "data",
        registry_host=registry.host,
        engine_host="unused",
        repo_url=repo.url,
        args={},
        insight=insight,
        timeout_seconds=1800,
    )
    demo = data["projects"].pop("demo")
    for run in range(1, runs + 1):
        data["projects"][f"bench-r{run}"] = {**demo, "image": {**demo["image"], "repository": f"bench/svc-r{run}"}}
        data["projects"][f"bench-e{run}"] = {**demo, "image": {**demo["image"], "repository": f"bench/engine-r{run}"}}
    data["projects"]["bench-warmup"] = {
        **demo,
        "build": {**demo["build"], "context": "warmup", "dockerfile": "warmup/Dockerfile"},
        "image": {**demo["image"], "repository": "bench/warmup"},
    }
    data["worker"]["lease_seconds"] = 30
    return data


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def fmt(value: object) -> str:
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    cells = [list(map(str, headers))] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def phase_table(kinds: dict[str, list[Timed]]) -> str:
    names: list[str] = []
    for timed in kinds.values():
        for t in timed:
            names += [n for n in t.phases if n not in names and n != "total"]
    names.append("total")
    rows = [
        [
            name,
            *[
                (
                    median([t.phases[name] for t in timed if name in t.phases])
                    if any(name in t.phases for t in timed)
                    else ""
                )
                for timed in kinds.values()
            ],
        ]
        for name in names
    ]
    return table(["phase (median s)", *kinds], rows)


def cpu_table(kinds: dict[str, list[Timed]]) -> str:
    """Same work, different wall time? Compare the CPU the machine spent and what was stolen."""
    keys = ["machine busy", "steal", "this process + CLI children"]
    rows = [
        [f"{key} (CPU s)", *[median([t.cpu.get(key, 0.0) for t in timed]) for timed in kinds.values()]] for key in keys
    ]
    rows.append(
        [
            "machine busy / wall (of 2 CPUs)",
            *[median([t.cpu.get("machine busy", 0.0) / t.seconds for t in timed]) for timed in kinds.values()],
        ]
    )
    return table(["CPU during the measurement (median)", *kinds], rows)


def vertex_table(kinds: dict[str, list[Timed]], top: int = 10) -> str:
    rows = []
    for kind, timed in kinds.items():
        names = {n for t in timed for n in t.vertices}
        values = {n: median([t.vertices.get(n, 0.0) for t in timed]) for n in names}
        for name, seconds in sorted(values.items(), key=lambda x: -x[1])[:top]:
            if seconds >= 0.05:
                rows.append([kind, seconds, name])
    return table(["build", "DONE s", "BuildKit step"], rows)


class OutOfTime(BaseException):
    """Raised from SIGALRM when --time-limit passes; BaseException so cleanup still runs."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------


def _buildx_docker_config(workdir: Path) -> Path:
    """A DOCKER_CONFIG with the pinned docker-buildx plugin, for the service and the hand-run."""
    tool("buildx")
    path = workdir / "docker-config"
    path.mkdir()
    (path / "cli-plugins").symlink_to(BUILDX_DOCKER_CONFIG / "cli-plugins")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small Dockerfile, 1 run")
    parser.add_argument("--runs", type=int, help="runs per measurement (default 3, quick 1)")
    parser.add_argument("--verbose", action="store_true", help="service logs at INFO on stderr")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--time-limit", type=float, help="stop after this many seconds (default 1800, quick 400)")
    args = parser.parse_args(argv)
    args.insight = False  # insight reads the image out of an engine: not part of a push-direct build
    runs = args.runs or (1 if args.quick else 3)
    size = "quick" if args.quick else "full"
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops services
    limit = args.time_limit or (400.0 if args.quick else 1800.0)

    def out_of_time(_signum: int, _frame: object) -> None:
        raise OutOfTime(f"time limit of {limit:.0f} s reached")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.setitimer(signal.ITIMER_REAL, limit)
    log("load average before: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))

    workdir = Path(tempfile.mkdtemp(prefix="bench-build-", dir="/tmp"))
    services: list[DockerEngine | Registry | BuildkitDaemon] = []
    db: Database | None = None
    try:
        os.environ["DOCKER_CONFIG"] = str(_buildx_docker_config(workdir))
        registry = Registry(workdir / "registry")
        engine = DockerEngine(workdir / "engine")
        daemon_a = BuildkitDaemon(workdir / "buildkitd-a", registries={})
        daemon_b = BuildkitDaemon(workdir / "buildkitd-b", registries={})
        for service in (registry, engine, daemon_a, daemon_b):
            service.start()
            services.append(service)
        log(f"registry {registry.host}, daemons {daemon_a.address} and {daemon_b.address}, engine {engine.host}")
        base = f"{registry.host}/busybox:1"
        engine.import_busybox(base)
        engine.push(base)
        base_id = image_id(engine, base)
        hand_builder = make_hand_builder(daemon_a, workdir)

        repo = GitRepo.create(workdir / "git")
        db = open_database(f"sqlite:///{workdir / 'pipeline.db'}")
        migrate(db)
        data = config_data(workdir, registry, repo, runs, False)
        config_a = make_config(data, {"name": "bk-a", "buildkit": daemon_a.address})
        config_b = make_config(data, {"name": "bk-b", "buildkit": daemon_b.address})
        config_e = make_config(data, {"name": "engine", "docker": engine.host})
        files: dict[str, str | bytes] = {"Dockerfile": dockerfile(base, size)}

        # Warm up like a long-running worker would be: first-use costs (imports, CLI mode
        # probe, the buildx builder definitions, HTTP client) are paid once per process.
        warm = repo.commit(warmup_files(base), message="warm-up project")
        for config in (config_a, config_b, config_e):
            service_build(db, config, warm, "bench-warmup")
        log("warm-up builds done")

        hand: list[Timed] = []
        cold: list[Timed] = []
        rebuild: list[Timed] = []
        fresh: list[Timed] = []
        on_engine: list[Timed] = []
        command = ""
        for run in range(1, runs + 1):
            name = f"bench-r{run}"
            sha = repo.commit({**files, **source_files(run, 0)}, message=f"run {run}")

            def baseline(run: int = run, sha: str = sha) -> None:
                nonlocal command
                prune_daemon(daemon_a)
                timed, command = hand_run_buildx(
                    hand_builder, repo.url, sha, f"{registry.host}/bench/hand-r{run}:latest", workdir
                )
                hand.append(timed)
                log(f"run {run}/{runs}: hand-run cold {timed.seconds:.1f} s")

            # Odd runs measure the hand-run first, even runs last, so that neither side always
            # gets the same position after a prune.
            if run % 2:
                baseline()
            prune_daemon(daemon_a)
            cold.append(service_build(db, config_a, sha, name))
            log(f"run {run}/{runs}: service cold {cold[-1].seconds:.1f} s")

            sha_1 = repo.commit(source_files(run, 1), message=f"run {run}: one-file change")
            rebuild.append(service_build(db, config_a, sha_1, name))
            log(f"run {run}/{runs}: service rebuild, same daemon {rebuild[-1].seconds:.1f} s")

            sha_2 = repo.commit(source_files(run, 2), message=f"run {run}: another one-file change")
            prune_daemon(daemon_b)
            fresh.append(service_build(db, config_b, sha_2, name))
            log(f"run {run}/{runs}: service rebuild, fresh daemon {fresh[-1].seconds:.1f} s")

            prune(engine, base_id)
            on_engine.append(service_build(db, config_e, sha, f"bench-e{run}"))
            log(f"run {run}/{runs}: service cold on the engine {on_engine[-1].seconds:.1f} s")
            if not run % 2:
                baseline()

        signal.setitimer(signal.ITIMER_REAL, 0)
        report(args, size, runs, command, hand, cold, rebuild, fresh, on_engine)
        return 0
    except OutOfTime as exc:
        log(f"stopped: {exc}")
        return 2
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        log("load average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
        if db is not None:
            db.dispose()
        for service in reversed(services):
            try:
                service.stop()
            except Exception as exc:  # keep stopping the others
                log(f"stopping {service.name} failed: {exc}")
        if args.keep:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def report(
    args: argparse.Namespace,
    size: str,
    runs: int,
    command: str,
    hand: list[Timed],
    cold: list[Timed],
    rebuild: list[Timed],
    fresh: list[Timed],
    on_engine: list[Timed],
) -> None:
    def seconds(timed: list[Timed]) -> list[float]:
        return [t.seconds for t in timed]

    def row(label: str, timed: list[Timed]) -> list[object]:
        values = seconds(timed)
        return [label, *values, median(values), "", ""]

    def ratio(label: str, top: list[Timed], bottom: list[Timed]) -> list[object]:
        per_run = [a / b for a, b in zip(seconds(top), seconds(bottom), strict=True)]
        value = median(seconds(top)) / median(seconds(bottom))
        goal = GOALS[label]
        if goal is None:
            return [f"ratio {label}", *per_run, value, "reported", ""]
        return [f"ratio {label}", *per_run, value, f"<= {goal:.2f}", "met" if value <= goal else "MISSED"]

    print()
    print(
        f"build_speed: {size} Dockerfile, {runs} run(s), on buildkitd v0.32 (buildx remote driver); "
        "seconds, ratio = median / median"
    )
    print(f"baseline: {command}  (REF, URL vary per run)")
    print()
    headers = ["measurement", *[f"run {i}" for i in range(1, runs + 1)], "median", "goal", ""]
    print(
        table(
            headers,
            [
                row("hand-run cold: clone + buildx build --push (s)", hand),
                row("service cold: queue -> succeeded (s)", cold),
                ratio("service / hand-run (cold)", cold, hand),
                row("service rebuild, one file, same daemon (s)", rebuild),
                ratio("rebuild / cold (same daemon)", rebuild, cold),
                row("service rebuild, one file, fresh daemon (s)", fresh),
                ratio("fresh daemon with registry cache / cold", fresh, cold),
                row("service cold on the engine: build+load+push (s)", on_engine),
                ratio("push-direct / engine build+load+push", cold, on_engine),
            ],
        )
    )
    pairs = [("1", cold, hand), ("2", rebuild, cold), ("3", fresh, cold), ("4", cold, on_engine)]
    print(
        "median of the per-run ratios: "
        + ", ".join(
            f"{n}: {median([a.seconds / b.seconds for a, b in zip(top, bottom, strict=True)]):.3f}"
            for n, top, bottom in pairs
        )
    )
    spread = seconds(hand)
    if len(spread) > 1:
        print(
            f"noise: the hand-run does the same work every run and took {min(spread):.1f}-"
            f"{max(spread):.1f} s ({(max(spread) - min(spread)) / median(spread):.0%} of its "
            "median)"
        )
    else:
        print("noise: one run only, no estimate (use --runs 3 or more)")
    print()
    steps = []
    for kind, timed in (("cold", cold), ("rebuild", rebuild), ("fresh daemon", fresh), ("engine", on_engine)):
        for t in timed:
            r = t.row
            steps.append(
                [
                    f"{kind} (build {r['id']})",
                    f"{r['steps_total']}/{r['steps_cached']}",
                    ", ".join(normalize(c) for c in r["cache_from"]) or "-",
                ]
            )
    print(table(["service build", "steps total/cached", "cache_from"], steps))
    print()
    kinds = {"hand-run": hand, "cold": cold, "rebuild": rebuild, "fresh daemon": fresh, "engine": on_engine}
    print(phase_table(kinds))
    print()
    print(cpu_table(kinds))
    print()
    print(vertex_table(kinds))


if __name__ == "__main__":
    sys.exit(main())
