"""Benchmark: webhook intake under load, PostgreSQL backend, the real ``pipeline serve``.

Goal on this 2-core machine: >= 1,000 deliveries/s with p99 <= 30 ms through the full intake
path (verify the signature, dedupe, match the project, filter, queue a build). Baseline in the
same run: a bare FastAPI app served by uvicorn the same way, whose one endpoint checks the HMAC
and does one INSERT via psycopg; ratios are pipeline / baseline per concurrency level.

Load comes from ``wrk`` with a Lua script that sends pre-generated, validly signed GitHub push
deliveries (distinct delivery ids and ``after`` SHAs: no duplicates); after every run the
database must hold exactly one queued build per 202 answer (plus at most the requests still in
flight when wrk stopped).

    cd /work/main && uv run python bench/intake_load.py [--quick] [--profile]

Extra arguments for ``pipeline serve``: ``--serve-args "..."`` or ``BENCH_SERVE_ARGS="..."``.
"""

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import ROOT, OutOfTime, code_version, machine_load, table, time_limit

SECRET_ENV = "BENCH_WEBHOOK_SECRET"
SECRET = "bench-webhook-secret-5f0c1e"
REPO = "https://github.com/acme/app.git"
GOAL_RPS = 1000.0
GOAL_P99_MS = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

LUA = r"""
-- Sends pre-generated raw HTTP requests (validly signed deliveries) from a file of
-- "<length>\n<request bytes>" records. Thread `id` of `nthreads` takes records
-- start+id, start+id+nthreads, ...; when they run out it starts over and counts `wrapped`.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  local path, start, nthreads = args[1], tonumber(args[2]), tonumber(args[3])
  reqs = {}
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  local pos, k, size = 1, 0, #data
  while pos <= size do
    local nl = string.find(data, "\n", pos, true)
    local len = tonumber(string.sub(data, pos, nl - 1))
    if k >= start and (k - start) % nthreads == id then
      reqs[#reqs + 1] = string.sub(data, nl + 1, nl + len)
    end
    pos = nl + 1 + len
    k = k + 1
  end
  data = nil
  total = #reqs
  assert(total > 0, "no requests left in " .. path .. " from record " .. start)
  i, issued, wrapped, s202, s200, sother = 0, 0, 0, 0, 0, 0
end

function request()
  i = i + 1
  if i > total then
    i = 1
    wrapped = wrapped + 1
  end
  issued = issued + 1
  return reqs[i]
end

function response(status, headers, body)
  if status == 202 then
    s202 = s202 + 1
  elseif status == 200 then
    s200 = s200 + 1
  else
    sother = sother + 1
  end
end

function done(summary, latency, requests)
  local sums = {issued = 0, s202 = 0, s200 = 0, sother = 0, wrapped = 0}
  local max_issued = 0
  for _, thread in ipairs(threads) do
    for key, _ in pairs(sums) do
      sums[key] = sums[key] + thread:get(key)
    end
    max_issued = math.max(max_issued, thread:get("issued"))
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH-RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "issued=%d max_issued=%d s202=%d s200=%d sother=%d wrapped=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_timeout=%d err_status=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, sums.issued, max_issued, sums.s202, sums.s200,
    sums.sother, sums.wrapped, e.connect, e.read, e.write, e.timeout, e.status))
end
"""


# -- the baseline server (this file, run with --baseline-server) ---------------------------------


def serve_baseline(port: int, dsn: str) -> None:
    """A bare FastAPI app: check the HMAC, one INSERT per delivery, 202. Same uvicorn.run call
    and the same body-then-threadpool shape as the real webhook route."""
    import hmac
    import queue

    import psycopg
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    secret = os.environ[SECRET_ENV].encode()
    connections: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
    for _ in range(15):  # as many as the service's SQLAlchemy pool allows (5 + 10 overflow)
        connections.put(psycopg.connect(dsn, autocommit=True))
    app = FastAPI()

    # (no `from __future__ import annotations` in this file: FastAPI must see `Request` itself)
    @app.post("/webhooks/github")
    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        given = request.headers.get("x-hub-signature-256", "")
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return JSONResponse({"detail": "bad signature"}, status_code=401)
        delivery = request.headers.get("x-github-delivery", "")

        def insert() -> None:
            conn = connections.get()
            try:
                conn.execute(
                    "INSERT INTO baseline_deliveries (delivery_id, body_sha256) VALUES (%s, %s)",
                    (delivery, hashlib.sha256(body).hexdigest()),
                )
            finally:
                connections.put(conn)

        await run_in_threadpool(insert)
        return JSONResponse({"outcome": "queued"}, status_code=202)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None)


# -- processes, CPU accounting -------------------------------------------------------------------


def cpu_seconds(pid: int, *, system_only: bool = False) -> float:
    """utime + stime of a process (all its threads), plus its reaped children's."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    wanted = (12, 14) if system_only else (11, 12, 13, 14)  # utime stime cutime cstime
    return sum(int(fields[i]) for i in wanted) / CLK_TCK


def tree_cpu_seconds(pid: int, *, system_only: bool = False) -> float:
    """``cpu_seconds`` of a process and its live children: `pipeline api --processes N` serves
    from worker processes under a supervisor, which itself does next to nothing."""
    return cpu_seconds(pid, system_only=system_only) + sum(
        cpu_seconds(child, system_only=system_only) for child in children_of(pid)
    )


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class ServerProcess:
    """A server in its own session (stopped by its process group id, which only it owns)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path, port: int) -> None:
        self.name, self.args, self.env, self.log, self.port = name, args, env, log, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} while starting "
                    f"({shlex.join(self.args)}):\n{tail(self.log)}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer /healthz in {timeout:.0f} s:\n{tail(self.log)}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ActivitySampler:
    """What the server's PostgreSQL backends are doing, sampled from pg_stat_activity every 20 ms:
    running, waiting for a lock, or waiting for the application (idle in transaction)."""

    def __init__(self, url: str, database: str) -> None:
        import threading

        import psycopg

        self.counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._conn = psycopg.connect(url.replace("+psycopg", ""), autocommit=True)
        self._database = database
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        query = (
            "SELECT state, coalesce(wait_event_type || ':' || wait_event, 'on CPU') "
            "FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        while not self._stop.wait(0.02):
            for state, wait in self._conn.execute(query, (self._database,)).fetchall():
                self.counts[f"{state} / {wait}"] += 1

    def stop(self) -> Counter[str]:
        self._stop.set()
        self._thread.join(timeout=5)
        self._conn.close()
        return self.counts


# -- deliveries ----------------------------------------------------------------------------------


def write_deliveries(path: Path, count: int, branches: int) -> int:
    """``count`` signed GitHub push deliveries as raw HTTP/1.1 requests; returns the file size."""
    from tests.webhooks import github_delivery, github_push

    previous = hashlib.sha1(b"bench-root").hexdigest()
    with open(path, "wb") as out:
        for n in range(count):
            after = hashlib.sha1(f"bench-delivery-{n}".encode()).hexdigest()
            ref = "refs/heads/main" if branches <= 1 else f"refs/heads/bench/b{n % branches}"
            payload = github_push("acme/app", REPO, ref=ref, before=previous, after=after, message=f"change {n}")
            body, headers = github_delivery(payload, SECRET, delivery_id=str(uuid.UUID(int=n + 1)))
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            raw = (
                f"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            out.write(b"%d\n" % len(raw) + raw)
            previous = after
    return path.stat().st_size


# -- one wrk run ---------------------------------------------------------------------------------


@dataclass
class RunResult:
    server: str
    connections: int
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    stats: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    db_rows: int = 0
    check: str = ""
    ok: bool = True


class Bench:
    def __init__(self, args: argparse.Namespace, base: Path) -> None:
        self.args, self.base = args, base
        self.pg: Any = None
        self.servers: dict[str, ServerProcess] = {}
        self.offsets: dict[str, int] = {}
        self.pool = 0
        self.requests_file = base / "deliveries.req"
        self.lua = base / "deliveries.lua"
        self.activity: Counter[str] = Counter()

    # setup
    def start(self) -> None:
        from tests.services import Postgres, free_port

        args = self.args
        print("starting PostgreSQL 15 ...", flush=True)
        self.pg = Postgres(self.base / "pg")
        self.pg.start()
        pipeline_url = self.pg.create_database("bench_pipeline")
        self.pg.create_database("bench_baseline")
        self.pg.psql(
            "CREATE TABLE baseline_deliveries (id bigserial PRIMARY KEY, "
            "delivery_id text NOT NULL, "
            "body_sha256 text NOT NULL, received_at timestamptz NOT NULL DEFAULT now())",
            database="bench_baseline",
        )
        branches = ["main"] if args.branches <= 1 else ["main", "bench/*"]
        config = {
            "data_dir": str(self.base / "data"),
            "database_url": pipeline_url,
            "registries": {"local": {"url": "127.0.0.1:5000", "insecure": True}},
            "projects": {
                "app": {
                    "repo": REPO,
                    "webhook_secret_env": SECRET_ENV,
                    "branches": branches,
                    "image": {"registry": "local", "repository": "acme/app"},
                    "tags": ["{branch}-{short_sha}"],
                }
            },
        }
        config_file = self.base / "pipeline.yaml"
        config_file.write_text(json.dumps(config, indent=2))  # JSON is YAML
        env = {**os.environ, SECRET_ENV: SECRET}
        env.pop("PIPELINE_CONFIG", None)
        env.pop("PIPELINE_DATABASE_URL", None)
        migrate = subprocess.run(
            ["uv", "run", "--frozen", "pipeline", "migrate", "--config", str(config_file)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"pipeline migrate failed: {migrate.stderr.decode()[-2000:]}")

        levels = len(args.connections)
        self.pool = args.pool or int((levels * args.duration + args.warmup) * args.rate_cap)
        with_time = time.monotonic()
        size = write_deliveries(self.requests_file, self.pool, args.branches)
        print(
            f"{self.pool} signed deliveries written ({size / 1e6:.0f} MB) in {time.monotonic() - with_time:.1f} s",
            flush=True,
        )
        self.lua.write_text(LUA)

        serve_port, base_port = free_port(), free_port()
        # `serve`: API + workers + scheduler in one process (workers off here); `api`: the API
        # alone in several processes, as production runs it in front of separate workers
        mode = ["--workers", "0"] if args.command == "serve" else ["--processes", str(args.processes)]
        serve = [
            sys.executable,
            "-m",
            "pipeline",
            args.command,
            "--config",
            str(config_file),
            "--port",
            str(serve_port),
            *mode,
            *args.serve_args,
        ]
        baseline = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--baseline-server",
            "--port",
            str(base_port),
            "--dsn",
            self.pg.url_for("bench_baseline").replace("+psycopg", ""),
        ]
        self.servers["baseline"] = ServerProcess("baseline", baseline, env, self.base / "baseline.log", base_port)
        self.servers["pipeline"] = ServerProcess("pipeline serve", serve, env, self.base / "serve.log", serve_port)
        print(f"serve: {shlex.join(serve[1:])}", flush=True)
        for server in self.servers.values():
            server.start()
            self.offsets[server.name] = 0

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        if self.pg is not None:
            self.pg.stop()

    # measuring
    def database(self, name: str) -> str:
        return "bench_baseline" if name == "baseline" else "bench_pipeline"

    def sessions(self, name: str) -> int:
        """Connections ever opened to the server's database (PostgreSQL 14+ statistics)."""
        out = self.pg.psql(f"SELECT sessions FROM pg_stat_database WHERE datname = '{self.database(name)}'")
        return int(out.split()[-1])

    def count_rows(self, name: str) -> tuple[int, int]:
        if name == "baseline":
            out = self.pg.psql(
                "SELECT count(*), count(DISTINCT delivery_id) FROM baseline_deliveries",
                database="bench_baseline",
            )
        else:
            out = self.pg.psql("SELECT count(*), count(DISTINCT commit) FROM builds", database="bench_pipeline")
        total, distinct = out.strip().split("|")
        return int(total), int(distinct)

    def settled_rows(self, name: str) -> tuple[int, int]:
        """Row counts once requests that were in flight when wrk stopped have finished."""
        last, stable_since = self.count_rows(name), time.monotonic()
        while time.monotonic() - stable_since < 0.6:
            time.sleep(0.2)
            now = self.count_rows(name)
            if now != last:
                last, stable_since = now, time.monotonic()
        return last

    def wrk(self, name: str, connections: int, duration: float, *, profile: Path | None = None) -> RunResult:
        server = self.servers[name]
        start = self.offsets[server.name]
        threads = min(self.args.threads, connections)
        url = f"http://127.0.0.1:{server.port}/webhooks/github"
        command = [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{duration:g}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(self.lua),
            url,
            "--",
            str(self.requests_file),
            str(start),
            str(threads),
        ]
        rows_before, _ = self.count_rows(name)
        sessions_before = self.sessions(name)
        pg_pid = int((self.pg.data_dir / "postmaster.pid").read_text().split()[0])
        pg_pids = [pg_pid, *children_of(pg_pid)]
        cpu_before = (
            tree_cpu_seconds(server.pid),
            sum(cpu_seconds(p) for p in pg_pids),
            resource.getrusage(resource.RUSAGE_CHILDREN),
            machine_busy(),
            tree_cpu_seconds(server.pid, system_only=True),
        )
        spy = self.start_profiler(server.pid, duration, profile) if profile else None
        sampler = ActivitySampler(self.pg.url_for("postgres"), self.database(name)) if profile else None
        try:
            proc = subprocess.run(command, capture_output=True, timeout=duration + 120, check=False, cwd=self.base)
        finally:
            if sampler is not None:
                self.activity = sampler.stop()
        pg_pids = set(pg_pids) | set(children_of(pg_pid))
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_after = (
            tree_cpu_seconds(server.pid),
            sum(cpu_seconds(p) for p in pg_pids),
            usage,
            machine_busy(),
            tree_cpu_seconds(server.pid, system_only=True),
        )
        if spy is not None:
            spy.wait(timeout=duration + 120)
        output = proc.stdout.decode(errors="replace")
        match = re.search(r"^BENCH-RESULT (.*)$", output, re.MULTILINE)
        if proc.returncode != 0 or match is None:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {output[-1500:]}\n{proc.stderr.decode()[-1500:]}")
        stats = {k: int(v) for k, v in (pair.split("=") for pair in match[1].split())}
        self.offsets[server.name] = start + threads * stats["max_issued"] + threads
        rows_after, distinct = self.settled_rows(name)
        new_sessions = self.sessions(name) - sessions_before

        result = RunResult(name, connections)
        result.stats = stats
        result.rps = stats["requests"] / (stats["duration_us"] / 1e6)
        for key in ("p50", "p90", "p99", "max"):
            setattr(result, f"{key}_ms", stats[f"{key}_us"] / 1000)
        served = stats["requests"] or 1
        result.cpu = {
            "server": (cpu_after[0] - cpu_before[0]) * 1000 / served,
            "postgres": (cpu_after[1] - cpu_before[1]) * 1000 / served,
            "wrk": ((cpu_after[2].ru_utime + cpu_after[2].ru_stime) - (cpu_before[2].ru_utime + cpu_before[2].ru_stime))
            * 1000
            / served,
            "busy": (cpu_after[3][0] - cpu_before[3][0]) / max(cpu_after[3][1] - cpu_before[3][1], 1),
            "sessions": new_sessions,
            "server_sys": (cpu_after[4] - cpu_before[4]) * 1000 / served,
        }
        # Accounting: every 202 is a row; a row without a 202 can only be a request that was in
        # flight when wrk stopped (sent, processed, answer never read); nothing twice.
        result.db_rows = new_rows = rows_after - rows_before
        in_flight = stats["issued"] - stats["requests"]
        lost = stats["s202"] - new_rows
        doubled = rows_after - distinct
        problems = []
        if lost > 0:
            problems.append(f"{lost} answered 202 but not in the DB")
        if new_rows - stats["s202"] > in_flight:
            problems.append(f"{new_rows - stats['s202']} rows without a 202 (only {in_flight} in flight)")
        if doubled:
            problems.append(f"{doubled} duplicate rows")
        if stats["s200"] or stats["sother"]:
            problems.append(f"{stats['s200'] + stats['sother']} answers were not 202")
        if stats["wrapped"]:
            problems.append("delivery pool exhausted: resent deliveries (raise --pool)")
        result.ok = not problems
        result.check = "; ".join(problems) or (
            f"ok ({new_rows} rows = {stats['s202']} x 202"
            + (f" + {new_rows - stats['s202']} in flight)" if new_rows != stats["s202"] else ")")
        )
        return result

    def start_profiler(self, pid: int, duration: float, out: Path) -> subprocess.Popen[bytes]:
        spy = shutil.which("py-spy")
        command = [spy] if spy else ["uv", "run", "--frozen", "--with", "py-spy", "py-spy"]
        # Blocking sampling (the process is paused for each sample): --nonblocking reads stacks
        # while they change and attributes samples to frames that were never running.
        command += [
            "record",
            "--pid",
            str(pid),
            "--rate",
            "100",
            "--duration",
            str(int(duration) - 1),
            "--format",
            "raw",
            "--output",
            str(out),
        ]
        if self.args.profile_gil:
            command.append("--gil")
        with open(out.with_suffix(".log"), "wb") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, cwd=self.base)
        time.sleep(1.0)  # attach before the load starts
        return proc


# -- in-process profile of the intake call ------------------------------------------------------


def read_requests(path: Path, start: int, count: int) -> list[tuple[dict[str, str], bytes]]:
    """Headers and body of ``count`` records of the request file, from record ``start``."""
    found: list[tuple[dict[str, str], bytes]] = []
    with open(path, "rb") as handle:
        index = 0
        while len(found) < count:
            size_line = handle.readline()
            if not size_line:
                break
            raw = handle.read(int(size_line))
            if index >= start:
                head, _, body = raw.partition(b"\r\n\r\n")
                lines = head.decode().split("\r\n")[1:]
                found.append((dict(line.split(": ", 1) for line in lines), body))
            index += 1
    return found


def profile_in_process(config_file: Path, requests_file: Path, start: int, count: int) -> None:
    """Call ``pipeline.intake.receive`` in this process, one delivery after another (no HTTP, no
    concurrency): wall time per delivery, the part spent in SQL statements, and Python CPU by
    package under cProfile. Shows the per-delivery cost that load multiplies."""
    import cProfile
    import pstats

    from sqlalchemy import event

    from pipeline import intake
    from pipeline.config import load_config
    from pipeline.store import open_database

    config = load_config(config_file)
    db = open_database(config.effective_database_url)
    deliveries = read_requests(requests_file, start, 2 * count + 50)
    if len(deliveries) < 2 * count + 50:
        print("(in-process profile skipped: delivery pool exhausted)")
        return
    statements: list[float] = []
    kinds: Counter[str] = Counter()
    connects = [0]

    def before(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        conn.info["bench_t"] = time.perf_counter()
        words = statement.split()
        table_at = next((i + 1 for i, w in enumerate(words) if w.upper() in ("FROM", "INTO", "UPDATE")), None)
        kinds[f"{words[0].upper()} {words[table_at] if table_at and table_at < len(words) else ''}"] += 1

    def after(conn: Any, *_: Any) -> None:
        statements.append(time.perf_counter() - conn.info.pop("bench_t"))

    def receive(batch: list[tuple[dict[str, str], bytes]]) -> None:
        for headers, body in batch:
            result = intake.receive(db, config, "github", headers, body)
            if result.status_code != 202:
                raise RuntimeError(f"in-process intake answered {result.status_code}: {result.body()}")

    try:
        receive(deliveries[:50])  # warm-up: statement caches, pool, prepared statements
        event.listen(db.engine, "before_cursor_execute", before)
        event.listen(db.engine, "after_cursor_execute", after)
        event.listen(db.engine, "connect", lambda *_: connects.__setitem__(0, connects[0] + 1))
        started, cpu_started = time.perf_counter(), time.process_time()
        receive(deliveries[50 : 50 + count])
        wall = (time.perf_counter() - started) * 1000 / count
        cpu = (time.process_time() - cpu_started) * 1000 / count
        counted, executed, connected = dict(kinds), list(statements), connects[0]
        profiler = cProfile.Profile()
        profiler.enable()
        receive(deliveries[50 + count :])
        profiler.disable()
    finally:
        db.dispose()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    by_package: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    calls = 0
    for (filename, line, func), (_, ncalls, tottime, _, _) in stats.items():
        calls += ncalls
        package = _cprofile_package(filename, func)
        by_package[package] += tottime
        by_function[f"{func} ({_short_path(filename)}:{line})"] += tottime
    profiled = sum(by_package.values()) or 1
    in_sql = sum(executed) * 1000 / count
    print(
        f"in-process, sequential intake.receive x {count} (PostgreSQL, no HTTP): "
        f"{wall:.2f} ms wall and {cpu:.2f} ms CPU per delivery; {in_sql:.2f} ms inside "
        f"{len(executed) / count:.1f} "
        f"cursor.execute calls (round trip included); {connected} new connections; "
        f"{calls / count:.0f} Python function calls per delivery (cProfile run)"
    )
    print("statements per delivery: " + ", ".join(f"{k.strip()} x{v / count:g}" for k, v in counted.items()))
    print(
        table(
            ["cProfile own time by package (inflated by cProfile; compare shares)", "share"],
            [[k, f"{v / profiled:.1%}"] for k, v in by_package.most_common(12)],
        )
    )
    print()
    print(
        table(
            ["cProfile own time by function", "share"],
            [[k, f"{v / profiled:.1%}"] for k, v in by_function.most_common(15)],
        )
    )


def _cprofile_package(filename: str, func: str) -> str:
    if filename == "~":  # a C function: name it by what it is a method of
        match = re.search(r"of '([\w.]+)", func) or re.search(r"method ([\w]+)\.", func)
        owner = match[1].split(".")[0] if match else "builtins"
        return f"C: {owner}"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if filename.startswith(str(ROOT) + "/"):
        return filename[len(str(ROOT)) + 1 :].split("/", 1)[0]
    return "stdlib"


# -- reports -------------------------------------------------------------------------------------


def print_results(results: list[RunResult]) -> None:
    headers = [
        "server",
        "conns",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "202",
        "200",
        "other",
        "sock err",
        "srv cpu ms/req (sys)",
        "pg cpu ms/req",
        "wrk cpu ms/req",
        "cpu busy",
        "new PG conns",
        "DB check",
    ]
    rows = []
    for r in results:
        s = r.stats
        errors = s["err_connect"] + s["err_read"] + s["err_write"] + s["err_timeout"]
        rows.append(
            [
                r.server,
                r.connections,
                f"{r.rps:.0f}",
                r.p50_ms,
                r.p90_ms,
                r.p99_ms,
                r.max_ms,
                s["s202"],
                s["s200"],
                s["sother"],
                errors,
                f"{r.cpu['server']:.2f} ({r.cpu['server_sys']:.2f})",
                r.cpu["postgres"],
                r.cpu["wrk"],
                f"{r.cpu['busy']:.0%}",
                r.cpu["sessions"],
                r.check,
            ]
        )
    print(table(headers, rows))


def print_ratios(results: list[RunResult]) -> None:
    by = {(r.server, r.connections): r for r in results}
    for conns in sorted({r.connections for r in results}):
        ours, base = by.get(("pipeline", conns)), by.get(("baseline", conns))
        if ours is None or base is None:
            continue
        print(
            f"ratio throughput pipeline/baseline @{conns} conns = {ours.rps / base.rps:.3f}"
            f"  ({ours.rps:.0f} vs {base.rps:.0f} req/s)"
        )
        print(
            f"ratio p99 pipeline/baseline @{conns} conns = {ours.p99_ms / base.p99_ms:.3f}"
            f"  ({ours.p99_ms:.1f} vs {base.p99_ms:.1f} ms)"
        )
        met = ours.rps >= GOAL_RPS and ours.p99_ms <= GOAL_P99_MS
        print(
            f"goal @{conns} conns (>= {GOAL_RPS:.0f} req/s and p99 <= {GOAL_P99_MS:.0f} ms): "
            f"{'met' if met else 'NOT met'} ({ours.rps:.0f} req/s, p99 {ours.p99_ms:.1f} ms)"
        )


# Stacks that are a thread waiting for work, not a request: py-spy cannot tell a thread blocked
# in a Python-level Condition.wait from a running one, so they are dropped by their frames.
_IDLE = (
    ("Condition.wait", "WorkerThread.run"),
    ("Condition.wait", "_main_loop"),
    ("EpollSelector.select", "BaseEventLoop._run_once"),
    ("_worker", "Thread.run"),
)


def print_profile(raw: Path, gil_only: bool, top: int = 15) -> None:
    """Wall-time view of the serve process's threads while under load (py-spy samples)."""
    if not raw.exists():
        print(f"(no profile: {tail(raw.with_suffix('.log'), 5)})")
        return
    where: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n, frames = int(count), [_frame(f) for f in stack.split(";")]
        names = [f.split(" (", 1)[0] for f in frames]
        if any(names[-1] == leaf and caller in names for leaf, caller in _IDLE):
            idle += n
            continue
        total += n
        where[_bucket(frames, names)] += n
        for name in set(frames):
            if "(pipeline/" in name or "(sqlalchemy/orm/session.py" in name:
                inclusive[name] += n
        own[frames[-1]] += n
    if not total:
        print("(empty profile)")
        return
    print(
        f"py-spy under load: {total} busy samples of `pipeline serve` threads "
        f"({idle} idle dropped); "
        + ("only the thread holding the GIL (Python CPU)" if gil_only else "wall time, so waiting on PostgreSQL counts")
    )
    shown = [(k, v) for k, v in where.most_common() if v / total >= 0.005]
    rest = total - sum(v for _, v in shown)
    print(
        table(
            ["where the threads are", "share"],
            [[k, f"{v / total:.1%}"] for k, v in shown]
            + ([["(other, each < 0.5%)", f"{rest / total:.1%}"]] if rest else []),
        )
    )
    print()
    print(
        table(
            ["pipeline functions and Session calls (inclusive)", "share"],
            [[k, f"{v / total:.1%}"] for k, v in inclusive.most_common(top)],
        )
    )
    print()
    print(table(["leaf frames", "share"], [[k, f"{v / total:.1%}"] for k, v in own.most_common(top)]))


def _bucket(frames: list[str], names: list[str]) -> str:
    loop = "WorkerThread.run" not in names
    package = _package(frames[-1])
    if loop:
        return f"event loop thread: {package}"
    if "Connection.connect" in names and (package == "psycopg" or package.startswith("stdlib")):
        return "threadpool: opening a PostgreSQL connection (pool overflow)"
    if package == "psycopg" or (package.startswith("stdlib") and "Connection.wait" in names):
        return "threadpool: psycopg, mostly waiting for PostgreSQL"
    return f"threadpool: {package}"


def _package(frame: str) -> str:
    path = frame.split(" (", 1)[1][:-1] if " (" in frame else frame
    if path.startswith("<"):  # generated code: "<sqlalchemy generated ... wrapper>", "<string>"
        return "sqlalchemy" if "sqlalchemy" in path else "stdlib"
    top = path.split("/", 1)[0].removesuffix(".py")
    if top in ("pipeline", "workers"):
        return "pipeline"
    if top in sys.stdlib_module_names:
        return f"stdlib {top}"
    return top


def _frame(frame: str) -> str:
    """``func (path/to/mod.py:12)`` -> ``func (path/to/mod.py)`` without the line number."""
    match = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not match:
        return frame
    func, path = match.groups()
    return f"{func} ({_short_path(path)})"


def _short_path(path: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            return path.split("/", 1)[1] if marker == "/lib/python3." else path
    return path


# -- main ----------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 s runs instead of 10 s")
    parser.add_argument("--connections", default="16,64", help="comma-separated concurrency levels")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--duration", type=float, default=None, help="seconds per run (10; quick 4)")
    parser.add_argument(
        "--branches",
        type=int,
        default=1,
        help="spread pushes over this many branches (1: all to main)",
    )
    parser.add_argument(
        "--pool",
        type=int,
        default=0,
        help="deliveries to pre-generate (default: enough for --rate-cap req/s over every run)",
    )
    parser.add_argument("--rate-cap", type=float, default=3000.0)
    parser.add_argument(
        "--command",
        choices=("serve", "api"),
        default="serve",
        help="the pipeline command to load: serve (one process) or api (--processes N)",
    )
    parser.add_argument("--processes", type=int, default=2, help="API processes with --command api")
    parser.add_argument(
        "--serve-args",
        default=os.environ.get("BENCH_SERVE_ARGS", ""),
        help="extra arguments for `pipeline serve` (or BENCH_SERVE_ARGS)",
    )
    parser.add_argument("--only", choices=("pipeline", "baseline"), default=None)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="one more run of pipeline serve at the highest concurrency under py-spy",
    )
    parser.add_argument("--profile-gil", action="store_true", help="profile only the GIL holder")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, database)")
    parser.add_argument("--time-limit", type=float, default=None)
    parser.add_argument("--baseline-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.connections = [int(c) for c in str(args.connections).split(",") if c]
    args.duration = args.duration or (4.0 if args.quick else 10.0)
    args.warmup = 1.0 if args.quick else 2.0
    args.serve_args = shlex.split(args.serve_args)
    return args


def main() -> int:
    args = parse_args()
    if args.baseline_server:
        serve_baseline(args.port, args.dsn)
        return 0
    os.environ[SECRET_ENV] = SECRET
    if shutil.which("wrk") is None:
        print("error: wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    print(f"before: {machine_load()}; {code_version()}")
    base = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    try:
        return run(args, base)
    except OutOfTime as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"work directory kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def run(args: argparse.Namespace, base: Path) -> int:
    servers = [args.only] if args.only else ["baseline", "pipeline"]
    runs = len(servers) * (len(args.connections) + 1) + (1 if args.profile else 0)
    limit = args.time_limit or 150 + runs * (args.duration + 20)
    bench = Bench(args, base)
    results: list[RunResult] = []
    profile = base / "profile.txt"
    in_process = io.StringIO()
    try:
        with time_limit(limit):
            bench.start()
            for name in servers:
                bench.wrk(name, args.connections[0], args.warmup)  # warm-up, not reported
            for conns in args.connections:
                for name in servers:
                    result = bench.wrk(name, conns, args.duration)
                    results.append(result)
                    print(
                        f"  {name:8} @{conns:3} conns: {result.rps:7.0f} req/s, "
                        f"p99 {result.p99_ms:6.1f} ms, "
                        f"{result.check}",
                        flush=True,
                    )
            if args.profile and "pipeline" in servers:
                conns = max(args.connections)
                profiled = bench.wrk("pipeline", conns, args.duration, profile=profile)
                print(
                    f"  profiled run @{conns} conns: {profiled.rps:.0f} req/s, "
                    f"p99 {profiled.p99_ms:.1f} ms "
                    "(py-spy attached; not in the table)",
                    flush=True,
                )
                with contextlib.redirect_stdout(in_process):
                    try:
                        profile_in_process(
                            base / "pipeline.yaml",
                            bench.requests_file,
                            bench.offsets["pipeline serve"],
                            300,
                        )
                    except Exception as exc:  # the measurements above still count
                        print(f"(in-process profile failed: {type(exc).__name__}: {exc})")
    finally:
        bench.stop()
    print()
    print(
        table(
            ["setting", "value"],
            [
                ["machine CPUs", os.cpu_count()],
                ["wrk threads", args.threads],
                ["seconds per run", args.duration],
                ["deliveries pool", bench.pool],
                ["branches", args.branches],
                ["serve extra args", shlex.join(args.serve_args) or "(none)"],
                ["after the runs", machine_load()],
            ],
        )
    )
    print()
    print_results(results)
    print()
    print_ratios(results)
    if args.profile and "pipeline" in servers:
        print()
        print_profile(profile, args.profile_gil)
        total = sum(bench.activity.values()) or 1
        print()
        print(
            table(
                ["PostgreSQL backends of pipeline serve (pg_stat_activity samples)", "share"],
                [[k, f"{v / total:.1%}"] for k, v in bench.activity.most_common()],
            )
        )
        print()
        print(in_process.getvalue(), end="")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
