"""History queries on PostgreSQL at scale: p50/p99 per query the API runs (goal p99 <= 20 ms).

Starts `tests.services.Postgres` in a temp dir, migrates (to head, or `--revision`), generates
1,000,000 builds and 5,000,000 promotions with `generate_series` in SQL, VACUUM ANALYZEs, then
times each history query through the project's own store functions. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the project on sys.path)
from _common import OutOfTime, Stopwatch, code_version, machine_load, table, time_limit
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from pipeline.config import Config, parse_config
from pipeline.promotion import _history
from pipeline.promotion._history import environment_matrix, image_lineage
from pipeline.store import Database, builds, jobs, migrate, open_database, promotions
from pipeline.store.pages import Before
from tests.services import Postgres

GOAL_MS = 20.0
PROJECTS = 20
ENVIRONMENTS = ("dev", "staging", "canary", "prod")
BUILD_STATUSES = ("succeeded", "failed", "superseded", "cancelled", "skipped", "queued", "running")
PROMOTION_STATUSES = ("succeeded", "failed", "rejected", "pending", "running", "awaiting_merge")


def project_name(i: int) -> str:
    return f"proj{i:02d}"


# ---------------------------------------------------------------- data generation (all in SQL)


def _generation_sql(n_builds: int, n_promotions: int) -> list[tuple[str, str]]:
    """(label, SQL) steps. Random values are drawn once per row in a subquery (volatile
    functions keep PostgreSQL from flattening it, so each draw is used consistently)."""
    b, p = n_builds, n_promotions
    return [
        (
            "projects",
            f"""
INSERT INTO projects (name, repo, created_at, updated_at)
SELECT 'proj' || lpad(i::text, 2, '0'), 'https://git.example.com/acme/proj' || lpad(i::text, 2, '0') || '.git',
       now() - interval '800 days', now()
FROM generate_series(1, {PROJECTS}) i""",
        ),
        # Projects are skewed (proj01 busiest), branches 70 % main, 10 % release/N, 20 % one of
        # 3,000 short-lived feature branches; statuses mostly succeeded, the newest 20 active;
        # created_at rises with id over two years and ends now.
        (
            "builds",
            f"""
INSERT INTO builds (id, project, commit, branch, ref, check_paths, trigger, status, build_args, image, tags,
                    digest, engine, builder_mode, error, attempts, created_at, started_at, finished_at,
                    steps_total, steps_cached, cache_from, image_size, layers, advice)
SELECT g, pr, c, br, 'refs/heads/' || br, false, CASE WHEN r4 < 0.95 THEN 'push' ELSE 'manual' END, st,
       '{{}}', CASE WHEN st = 'succeeded' THEN 'registry.example.com/acme/' || pr || '@' || d END,
       CASE WHEN st = 'succeeded' THEN json_build_array(replace(br, '/', '-') || '-' || left(c, 7), c)
            ELSE '[]'::json END,
       CASE WHEN st = 'succeeded' THEN d END, 'unix:///var/run/docker.sock', 'buildkit',
       CASE WHEN st = 'failed' THEN 'docker build exited with code 1' END, 1, t, t + interval '4 s',
       CASE WHEN st NOT IN ('queued', 'running') THEN t + interval '3 min' END, 14, 10, '[]', 48000000, '[]', '[]'
FROM (
  SELECT g,
         'proj' || lpad((1 + floor({PROJECTS} * power(random(), 1.6)))::int::text, 2, '0') AS pr,
         md5(g::text) || left(md5('c' || g), 8) AS c,
         'sha256:' || md5('d' || g) || md5('e' || g) AS d,
         CASE WHEN r2 < 0.70 THEN 'main'
              WHEN r2 < 0.80 THEN 'release/' || (1 + floor(random() * 12))::int
              ELSE 'feature/f' || floor(random() * 3000)::int END AS br,
         CASE WHEN g > {b} - 20 THEN (ARRAY['queued', 'running'])[1 + mod(g, 2)]
              WHEN r3 < 0.85 THEN 'succeeded' WHEN r3 < 0.93 THEN 'failed' WHEN r3 < 0.97 THEN 'superseded'
              WHEN r3 < 0.99 THEN 'cancelled' ELSE 'skipped' END AS st,
         now() - interval '730 days' + (g::float8 / {b}) * interval '730 days' - random() * interval '10 min' AS t,
         r4
  FROM (SELECT g, random() AS r2, random() AS r3, random() AS r4 FROM generate_series(1, {b}) g) raw
) s""",
        ),
        (
            "succeeded builds",
            """
CREATE TEMP TABLE ok AS
SELECT row_number() OVER (ORDER BY id) AS rn, id, project, digest, created_at FROM builds WHERE status = 'succeeded'""",
        ),
        ("", "CREATE UNIQUE INDEX ON ok (rn)"),
        ("", "ANALYZE ok"),
        # Each succeeded build is promoted about 6 times over the 4 environments (dev most,
        # prod least), in build order; 60 % auto, 35 % manual by one of 60 people (skewed),
        # 5 % rollbacks; 90 % succeeded; the newest 40 are still waiting (pending, running,
        # awaiting_merge), as a live system has only a few.
        (
            "promotions",
            f"""
INSERT INTO promotions (id, project, environment, digest, build_id, status, trigger, actor, reason, source_ref,
                        target_ref, previous_digest, rollback_to_id, restores_id, steps, error, attempts,
                        created_at, started_at, finished_at)
SELECT g, o.project, env, o.digest, o.id, st, trig,
       CASE WHEN trig = 'auto' THEN 'auto' ELSE 'user' || (1 + floor(60 * power(r5, 2)))::int END,
       CASE WHEN trig = 'rollback' THEN 'bad release' ELSE '' END,
       'registry.example.com/acme/' || o.project || '@' || o.digest,
       'registry.example.com/' || env || '/' || o.project || ':' || env,
       NULL, CASE WHEN g > 4 THEN g - 4 END, CASE WHEN trig = 'rollback' AND g > 8 THEN g - 8 END,
       '[]', CASE WHEN st = 'failed' THEN 'copy failed: registry answered 503' END, 1,
       o.created_at + interval '5 min' + ei * interval '2 hours',
       o.created_at + interval '5 min' + ei * interval '2 hours' + interval '1 s',
       CASE WHEN st IN ('succeeded', 'failed', 'rejected') THEN o.created_at + interval '6 min' + ei * interval '2 hours' END
FROM (
  SELECT g, k, r5,
         (ARRAY['dev', 'staging', 'canary', 'prod'])[ei + 1] AS env, ei,
         CASE WHEN g > {p} - 40 THEN (ARRAY['pending', 'running', 'awaiting_merge'])[1 + mod(g, 3)]
              WHEN r3 < 0.90 THEN 'succeeded' WHEN r3 < 0.96 THEN 'failed' ELSE 'rejected' END AS st,
         CASE WHEN r4 < 0.60 THEN 'auto' WHEN r4 < 0.95 THEN 'manual' ELSE 'rollback' END AS trig
  FROM (
    SELECT g, 1 + ((g - 1)::bigint * (SELECT count(*) FROM ok) / {p}) AS k, random() AS r3, random() AS r4,
           random() AS r5,
           CASE WHEN r2 < 0.40 THEN 0 WHEN r2 < 0.70 THEN 1 WHEN r2 < 0.88 THEN 2 ELSE 3 END AS ei
    FROM (SELECT g, random() AS r2 FROM generate_series(1, {p}) g) r
  ) raw
) s JOIN ok o ON o.rn = s.k""",
        ),
        (
            "sequences",
            """
SELECT setval(pg_get_serial_sequence('builds', 'id'), (SELECT max(id) FROM builds)),
       setval(pg_get_serial_sequence('promotions', 'id'), (SELECT max(id) FROM promotions))""",
        ),
    ]


def generate(db: Database, n_builds: int, n_promotions: int) -> list[tuple[str, float]]:
    """Load the data with secondary indexes dropped (rebuilt after, sorted: much faster than
    maintaining them row by row) and foreign-key triggers off; returns seconds per step."""
    timings: list[tuple[str, float]] = []
    with db.engine.connect() as conn:
        conn.exec_driver_sql("SET maintenance_work_mem = '1GB'")
        conn.exec_driver_sql("SET work_mem = '256MB'")
        conn.exec_driver_sql("SET session_replication_role = replica")  # no FK triggers during the load
        conn.exec_driver_sql("SELECT setseed(0.42)")
        indexes = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT indexdef FROM pg_indexes i WHERE tablename IN ('builds', 'promotions') AND NOT EXISTS "
                    "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
                )
            )
        ]
        names = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT indexname FROM pg_indexes i WHERE tablename IN ('builds', 'promotions') AND NOT EXISTS "
                    "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
                )
            )
        ]
        for name in names:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
        for label, sql in _generation_sql(n_builds, n_promotions):
            with Stopwatch() as sw:
                conn.exec_driver_sql(sql)
            if label:
                timings.append((f"insert {label}", sw.seconds))
        with Stopwatch() as sw:
            for definition in indexes:
                conn.exec_driver_sql(definition)
        timings.append((f"create {len(indexes)} secondary indexes", sw.seconds))
        conn.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn, Stopwatch() as sw:
        conn.exec_driver_sql("VACUUM (ANALYZE) builds")
        conn.exec_driver_sql("VACUUM (ANALYZE) promotions")
    timings.append(("vacuum analyze", sw.seconds))
    return timings


# ---------------------------------------------------------------- what the queries are asked


def bench_config() -> Config:
    envs = [
        {
            "name": e,
            "registry": "r",
            "repository": f"{e}/app",
            "auto": e == "dev",
            **({"requires": ENVIRONMENTS[i - 1]} if i else {}),
        }
        for i, e in enumerate(ENVIRONMENTS)
    ]
    return parse_config(
        {
            "registries": {"r": {"url": "registry.example.com"}},
            "projects": {
                project_name(i): {
                    "repo": f"https://git.example.com/acme/{project_name(i)}.git",
                    "image": {"registry": "r", "repository": f"acme/{project_name(i)}"},
                    "environments": envs,
                }
                for i in range(1, PROJECTS + 1)
            },
        },
        "bench",
    )


class Samples:
    """Parameter values taken from the generated data, so every query asks about real rows."""

    def __init__(self, db: Database, rng: random.Random) -> None:
        self.rng = rng
        with db.engine.connect() as conn:
            q = lambda sql: [tuple(r) for r in conn.execute(text(sql))]  # noqa: E731
            self.max_build = q("SELECT max(id) FROM builds")[0][0]
            self.max_promotion = q("SELECT max(id) FROM promotions")[0][0]
            self.t0, self.t1 = q("SELECT min(created_at), max(created_at) FROM builds")[0]
            self.build_rows = q(
                "SELECT project, branch, commit, digest FROM builds TABLESAMPLE SYSTEM (1) "
                "WHERE digest IS NOT NULL LIMIT 2000"
            )
            self.promotion_rows = q(
                "SELECT project, environment, digest, actor FROM promotions TABLESAMPLE SYSTEM (1) LIMIT 2000"
            )
            self.actors = [
                r[0] for r in q(f"SELECT DISTINCT actor FROM promotions WHERE id > {self.max_promotion} - 200000")
            ]
            # people who promoted only long ago: a filter on them found nothing near the top
            self.rare_actors = [
                r[0]
                for r in q(
                    "SELECT actor FROM promotions WHERE actor <> 'auto' GROUP BY actor ORDER BY count(*) LIMIT 5"
                )
            ]
            conn.execute(
                text(
                    f"UPDATE promotions SET actor = 'departed' || (id % 5) WHERE id IN "
                    f"(SELECT id FROM promotions WHERE actor <> 'auto' AND id < {self.max_promotion // 3} "
                    "ORDER BY id LIMIT 300)"
                )
            )
            conn.commit()
            self.rare_actors += [f"departed{i}" for i in range(5)]

    def pick(self, seq: list[Any]) -> Any:
        return self.rng.choice(seq)

    def week(self) -> tuple[dt.datetime, dt.datetime]:
        start = self.t0 + (self.t1 - self.t0) * self.rng.random()
        return start, start + dt.timedelta(days=7)


def claim_promotion(ses: Session) -> Any:
    """What a promotion worker asks every poll while promotions wait: the serialized claim."""
    claimed = jobs.claim(ses, jobs.PROMOTIONS, "bench", dt.timedelta(seconds=60))
    ses.rollback()
    return claimed


def queries(s: Samples, config: Config) -> list[tuple[str, Callable[[Session], Any]]]:
    """(name, call) pairs; each call draws fresh parameters. Limits are the API's: 50 + 1."""
    BF, PF, L = builds.BuildFilter, promotions.PromotionFilter, 51
    at = lambda before: Before(before) if before else None  # noqa: E731
    lb = lambda w, before=None: lambda ses: builds.list_builds(ses, w, limit=L, before=at(before))  # noqa: E731
    lp = lambda w, before=None: lambda ses: promotions.list_promotions(ses, w, limit=L, before=at(before))  # noqa: E731
    r = s.rng

    def branch_of_project() -> BF:
        project, branch, *_ = s.pick(s.build_rows)
        return BF(project=project, branch=branch)

    def matrix_cold(ses: Session) -> Any:
        """The matrix as the first request after an arrival in every cell sees it: nothing kept."""
        _history._LEAD_TIMES.clear()
        return environment_matrix(ses, config)

    def one(make: Callable[[], Callable[[Session], Any]]) -> Callable[[Session], Any]:
        return lambda ses: make()(ses)

    def week_b() -> BF:
        since, until = s.week()
        return BF(since=since, until=until)

    def week_p(**where: Any) -> PF:
        since, until = s.week()
        return PF(since=since, until=until, **where)

    def project_week_b() -> BF:
        since, until = s.week()
        return BF(project=project_name(r.randint(1, PROJECTS)), since=since, until=until)

    def week_page_2(where: Callable[[], Any], listing: Callable[..., Any]) -> Callable[[Session], Any]:
        """The second page of a week: continues from the first page's last row by time."""

        def call(ses: Session) -> Any:
            first = listing(ses, chosen := where(), limit=L)
            return listing(ses, chosen, limit=L, before=Before(first[-2].id, first[-2].created_at)) if first else []

        return call

    return [
        ("builds newest page", one(lambda: lb(BF()))),
        ("builds by project", one(lambda: lb(BF(project=project_name(r.randint(1, PROJECTS)))))),
        ("builds by project+branch", one(lambda: lb(branch_of_project()))),
        ("builds by status", one(lambda: lb(BF(status=r.choice(BUILD_STATUSES))))),
        ("builds by commit prefix (7)", one(lambda: lb(BF(commit=s.pick(s.build_rows)[2][:7])))),
        ("builds by digest", one(lambda: lb(BF(digest=s.pick(s.build_rows)[3])))),
        ("builds by 1-week range", one(lambda: lb(week_b()))),
        ("builds by 1-week range, page 2", week_page_2(week_b, builds.list_builds)),
        ("builds by project + 1-week range", one(lambda: lb(project_week_b()))),
        ("builds deep cursor page", one(lambda: lb(BF(), r.randint(1, s.max_build)))),
        (
            "builds by project, deep cursor",
            one(lambda: lb(BF(project=project_name(r.randint(1, PROJECTS))), r.randint(1, s.max_build))),
        ),
        ("promotions newest page", one(lambda: lp(PF()))),
        (
            "promotions by project+env",
            one(lambda: lp(PF(project=project_name(r.randint(1, PROJECTS)), environment=r.choice(ENVIRONMENTS)))),
        ),
        ("promotions by status", one(lambda: lp(PF(status=r.choice(PROMOTION_STATUSES))))),
        ("promotions by digest", one(lambda: lp(PF(digest=s.pick(s.promotion_rows)[2])))),
        ("promotions by actor", one(lambda: lp(PF(actor=s.pick(s.actors))))),
        ("promotions by rare actor", one(lambda: lp(PF(actor=s.pick(s.rare_actors))))),
        ("promotions by trigger", one(lambda: lp(PF(trigger=r.choice(("manual", "auto", "rollback")))))),
        ("promotions by 1-week range", one(lambda: lp(week_p()))),
        ("promotions by 1-week range, page 2", week_page_2(week_p, promotions.list_promotions)),
        (
            "promotions by project+env + 1-week range",
            one(lambda: lp(week_p(project=project_name(r.randint(1, PROJECTS)), environment=r.choice(ENVIRONMENTS)))),
        ),
        ("promotions deep cursor page", one(lambda: lp(PF(), r.randint(1, s.max_promotion)))),
        (
            "promotions.current",
            lambda ses: promotions.current(ses, project_name(r.randint(1, PROJECTS)), r.choice(ENVIRONMENTS)),
        ),
        (
            "promotions.was_promoted",
            lambda ses: promotions.was_promoted(
                ses, *(lambda row: (row[0], r.choice(ENVIRONMENTS), row[2]))(s.pick(s.promotion_rows))
            ),
        ),
        (
            "environment_matrix (1 project)",
            lambda ses: environment_matrix(ses, config, project_name(r.randint(1, PROJECTS))),
        ),
        ("environment_matrix (all 20 projects)", lambda ses: environment_matrix(ses, config)),
        ("environment_matrix (all 20, lead times cold)", matrix_cold),
        ("claim a promotion (rolled back)", claim_promotion),
        ("image_lineage (1 digest)", lambda ses: image_lineage(ses, config, s.pick(s.promotion_rows)[2])),
    ]


# ---------------------------------------------------------------- timing


class StatementLog:
    """The SQL statements (and parameters) of the calls made while ``active``."""

    def __init__(self, db: Database) -> None:
        self.active, self.statements = False, []  # type: list[tuple[str, Any]]
        event.listen(db.engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        if self.active:
            self.statements.append((statement, parameters))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(db: Database, call: Callable[[Session], Any], runs: int, budget: float) -> list[float]:
    """Milliseconds per call, a session per call as an API request has; stops at ``budget`` s."""
    for _ in range(5):  # warm-up: plan cache, pool, buffers
        with db.session() as ses:
            call(ses)
    times: list[float] = []
    deadline = time.monotonic() + budget
    for _ in range(runs):
        start = time.perf_counter()
        with db.session() as ses:
            call(ses)
        times.append((time.perf_counter() - start) * 1000)
        if time.monotonic() > deadline:
            break
    return times


def explain_slowest(db: Database, log: StatementLog, call: Callable[[Session], Any], tries: int = 20) -> str:
    """Run the call ``tries`` times with fresh parameters; EXPLAIN ANALYZE its slowest statement."""
    worst: tuple[float, str, Any] = (-1.0, "", None)
    for _ in range(tries):
        log.statements, log.active = [], True
        with db.session() as ses:
            call(ses)
        log.active = False
        with db.engine.connect() as conn:
            for statement, params in log.statements:
                start = time.perf_counter()
                conn.exec_driver_sql(statement, params).fetchall()
                took = (time.perf_counter() - start) * 1000
                if took > worst[0]:
                    worst = (took, statement, params)
    took, statement, params = worst
    with db.engine.connect() as conn:
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, params))
    shown = " ".join(statement.split())
    return f"slowest statement ({took:.1f} ms) with {params}:\n  {shown}\n{plan}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k builds, 500k promotions")
    parser.add_argument("--builds", type=int)
    parser.add_argument("--promotions", type=int)
    parser.add_argument("--runs", type=int, default=200, help="timed calls per query (default 200)")
    parser.add_argument("--revision", default="head", help="migrate to this revision (e.g. 0009 for before)")
    parser.add_argument("--only", help="run only the queries whose name contains one of these (comma-separated)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--time-limit", type=float, help="seconds (default 1500, or 400 with --quick)")
    args = parser.parse_args()
    n_builds = args.builds or (100_000 if args.quick else 1_000_000)
    n_promotions = args.promotions or (500_000 if args.quick else 5_000_000)
    limit = args.time_limit or (400 if args.quick else 1500)

    print(
        f"history queries: {n_builds:,} builds, {n_promotions:,} promotions, schema at {args.revision}, "
        f"{args.runs} calls per query; {code_version()}"
    )
    print(machine_load())
    work = Path(tempfile.mkdtemp(prefix="bench-history-"))
    pg = Postgres(work / "pg")
    db: Database | None = None
    failed = False
    try:
        with time_limit(limit):
            pg.start()
            url = pg.create_database("history")
            db = open_database(url, pool_size=4)
            migrate(db, args.revision)
            with Stopwatch() as total:
                steps = generate(db, n_builds, n_promotions)
            print(table(["data generation", "s"], [*steps, ("total", total.seconds)]))
            with db.engine.connect() as conn:
                sizes = list(
                    conn.execute(
                        text(
                            "SELECT relname, pg_size_pretty(pg_table_size(oid)), pg_size_pretty(pg_indexes_size(oid)) "
                            "FROM pg_class WHERE relname IN ('builds', 'promotions') ORDER BY relname"
                        )
                    )
                )
                indexes = [
                    r[0]
                    for r in conn.execute(
                        text("SELECT indexname FROM pg_indexes WHERE tablename IN ('builds', 'promotions') ORDER BY 1")
                    )
                ]
            print(table(["table", "heap", "indexes"], [tuple(r) for r in sizes]))
            print("indexes:", ", ".join(indexes))

            rng = random.Random(7)
            samples, config, log = Samples(db, rng), bench_config(), StatementLog(db)
            rows, misses = [], []
            for name, call in queries(samples, config):
                if args.only and not any(part in name for part in args.only.split(",")):
                    continue
                log.statements, log.active = [], True
                with db.session() as ses:
                    call(ses)
                log.active = False
                n_statements = len(log.statements)
                times = measure(db, call, args.runs, budget=max(20.0, limit / 40))
                p50, p99 = percentile(times, 0.50), percentile(times, 0.99)
                met = p99 <= GOAL_MS
                rows.append(
                    (
                        name,
                        n_statements,
                        len(times),
                        p50,
                        p99,
                        max(times),
                        f"<= {GOAL_MS:.0f}",
                        "met" if met else "MISSED",
                    )
                )
                print(f"  {name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms", flush=True)
                if not met:
                    misses.append((name, call))
            print()
            print(table(["query", "stmts", "calls", "p50 ms", "p99 ms", "max ms", "goal p99", "result"], rows))
            print(f"{sum(r[-1] == 'met' for r in rows)} of {len(rows)} queries met p99 <= {GOAL_MS:.0f} ms")
            for name, call in misses:
                print(f"\n--- EXPLAIN for {name}: {explain_slowest(db, log, call)}")
            failed = bool(misses)
    except OutOfTime as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        failed = True
    finally:
        if db is not None:
            db.dispose()
        pg.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        print(machine_load())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
