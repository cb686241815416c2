"""The ``pipeline`` command: serve, api, worker, migrate, doctor, keys; and, against a running
service, builds, promote, rollback, release, envs, promotions, images (``_ops``), build,
rebuild, cancel, logs (``_builds``), cleanup (``_cleanup``); each of those takes ``--token``
(``_credentials``).

Commands are thin: load the config, open the database, call into ``pipeline`` or
``workers``. Every ``PipelineError`` ends the command with its message and exit code 2.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pipeline import __version__
from pipeline.cli._builds import register as register_builds
from pipeline.cli._cleanup import cleanup as cleanup_command
from pipeline.cli._config import config_app
from pipeline.cli._keys import keys_app
from pipeline.cli._notify import notifications
from pipeline.cli._ops import register as register_ops
from pipeline.cli._tokens import tokens_app
from pipeline.errors import ConfigError, PipelineError

if TYPE_CHECKING:  # the ops commands need neither; importing SQLAlchemy costs most of a CLI start
    from pipeline.config import Config, LiveConfig
    from pipeline.store import Database

__all__ = ["app", "main"]

app = typer.Typer(help="GitOps image build-and-promote service.", no_args_is_help=True, pretty_exceptions_enable=False)

app.add_typer(keys_app, name="keys", help="Signing keys in cosign's format.")
register_ops(app)
register_builds(app)
app.command("cleanup")(cleanup_command)
app.command()(notifications)
app.add_typer(tokens_app, name="tokens")
app.add_typer(config_app, name="config")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (YAML); PIPELINE_CONFIG overrides it."),
]


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"pipeline {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """GitOps image build-and-promote service."""


def _setup_logging() -> None:
    from pipeline.logs import setup_logging

    setup_logging()


def _open(config_path: Path | None) -> tuple[Config, Database]:
    from pipeline.config import load_config
    from pipeline.store import open_database

    config = load_config(config_path)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return config, open_database(config.effective_database_url)


def _require_current_schema(db: Database) -> None:
    from pipeline.store import current_revision, head_revision

    current, head = current_revision(db), head_revision()
    if current != head:
        raise ConfigError(
            f"database schema is at {current or 'nothing'}, this version needs {head}: "
            "run `pipeline migrate --config FILE` first"
        )


def _sync_projects(db: Database, config: Config) -> None:
    from pipeline.store import projects

    with db.session() as session:
        projects.sync_projects(session, config.projects)


def _start(config_path: Path | None, *, migrate_embedded: bool = False) -> tuple[LiveConfig, Database]:
    """What every long-running command does first: logging, config, a current schema, projects;
    and SIGHUP reloads the config of this process (``pipeline.config_reload``)."""
    from pipeline.config import LiveConfig, config_file

    _setup_logging()
    cfg, db = _open(config_path)
    if migrate_embedded and db.dialect == "sqlite":
        from pipeline.store import migrate

        migrate(db)
    _require_current_schema(db)
    _sync_projects(db, cfg)
    live = LiveConfig(cfg, config_file(config_path))
    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=_reload_here, args=(db, live), daemon=True).start())
    return live, db


def _reload_here(db: Database, live: LiveConfig) -> None:
    """SIGHUP: this process only, as daemons do; ``pipeline config reload`` reaches them all."""
    import logging

    from pipeline.config_reload import sync

    try:
        live.reload()
        sync(db, live)
    except PipelineError as exc:
        logging.getLogger("pipeline.config_reload").error(
            "SIGHUP: config not reloaded, keeping the running one: %s", exc.message
        )


@app.command("migrate")
def migrate_command(config: ConfigOption = None) -> None:
    """Bring the database schema to the latest migration."""
    from pipeline.store import current_revision, migrate

    cfg, db = _open(config)
    migrate(db)
    _sync_projects(db, cfg)
    typer.echo(f"database at revision {current_revision(db)}")


def _start_workers(db: Database, cfg: LiveConfig, builds: int, promotions: int) -> tuple[list, list[threading.Thread]]:  # type: ignore[type-arg]
    """Build and promotion workers, each in its own thread (they wait on I/O, not on the GIL);
    beside the promotion workers one that checks environments after promotion (``verify_after``),
    and one delivery worker for commit statuses and notifications."""
    from workers._lease import QueueWorker
    from workers.build_worker import BuildWorker
    from workers.notification_worker import NotificationWorker
    from workers.promotion_worker import PromotionWorker
    from workers.verification_worker import VerificationWorker

    pool: list[QueueWorker] = [BuildWorker(db, cfg) for _ in range(builds)]
    pool += [PromotionWorker(db, cfg) for _ in range(promotions)]
    pool += [VerificationWorker(db, cfg)] if promotions else []
    pool.append(NotificationWorker(db, cfg))
    threads = [
        threading.Thread(target=w.run_forever, name=f"{type(w).__name__}-{i}", daemon=True) for i, w in enumerate(pool)
    ]
    for thread in threads:
        thread.start()
    return pool, threads


def _stop_workers(pool: list, threads: list[threading.Thread]) -> None:  # type: ignore[type-arg]
    for worker in pool:
        worker.stop()
    for thread in threads:
        thread.join(timeout=30)


PromotionWorkers = Annotated[
    int, typer.Option("--promotion-workers", "--promotions", help="Promotion workers in this process.")
]


@app.command("worker")
def worker_command(
    config: ConfigOption = None,
    builds: Annotated[int, typer.Option("--builds", help="Build workers in this process.")] = 1,
    promotions: PromotionWorkers = 1,
) -> None:
    """Run build and promotion workers (and the lease reaper) until SIGTERM or Ctrl-C."""
    from workers.scheduler import start_scheduler

    cfg, db = _start(config)
    pool, threads = _start_workers(db, cfg, builds, promotions)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    scheduler = start_scheduler(db, cfg)
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        _stop_workers(pool, threads)
        scheduler.shutdown(wait=False)


AccessLog = Annotated[
    bool,
    typer.Option("--access-log/--no-access-log", help="Log every HTTP request (webhooks are logged by intake anyway)."),
]


@app.command("api")
def api_command(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    processes: Annotated[int, typer.Option("--processes", help="API processes (one per core).")] = 2,
    access_log: AccessLog = False,
) -> None:
    """Run only the API (webhooks, REST) in several processes; workers run elsewhere."""
    import os

    import uvicorn

    _, db = _start(config)
    db.dispose()  # each API process opens its own pool
    if config is not None and not os.environ.get("PIPELINE_CONFIG"):
        os.environ["PIPELINE_CONFIG"] = str(Path(config).resolve())
    uvicorn.run(
        "pipeline.api:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=processes,
        log_config=None,
        access_log=access_log,
    )


def _first_admin_token(db: Database, cfg: Config) -> None:
    """A fresh installation has no token to make tokens with: make one admin token and show it once."""
    from pipeline.store import tokens

    if not cfg.api.auth:
        return
    with db.session() as session:
        if tokens.count_active(session):
            return
        _, secret = tokens.create_token(session, name="admin", role="admin", environments=None, created_by="serve")
    typer.echo(f"first admin token (shown once; `pipeline tokens create` makes more): {secret}", err=True)


@app.command("serve")
def serve_command(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option("--workers", help="Build workers in this process.")] = 1,
    promotion_workers: PromotionWorkers = 1,
    access_log: AccessLog = False,
) -> None:
    """Run the API, build and promotion workers and the scheduler in one process."""
    import uvicorn

    from pipeline.api import create_app
    from workers.scheduler import start_scheduler

    cfg, db = _start(config, migrate_embedded=True)
    _first_admin_token(db, cfg.current)
    pool, threads = _start_workers(db, cfg, workers, promotion_workers)
    scheduler = start_scheduler(db, cfg)
    try:
        uvicorn.run(
            create_app(cfg, db, needs_engine=workers > 0), host=host, port=port, log_config=None, access_log=access_log
        )
    finally:
        _stop_workers(pool, threads)
        scheduler.shutdown(wait=False)


@app.command("doctor")
def doctor_command(config: ConfigOption = None) -> None:
    """Check the database, Git, every Docker engine, registry and project repository."""
    from pipeline.doctor import run_checks

    cfg, db = _open(config)
    results = run_checks(cfg, db)
    width = max(len(r.component) for r in results)
    for result in results:
        typer.echo(f"{'ok  ' if result.ok else 'FAIL'}  {result.component:<{width}}  {result.detail}")
    failed = [r for r in results if not r.ok]
    if failed:
        typer.echo(f"{len(failed)} of {len(results)} checks failed", err=True)
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except PipelineError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
