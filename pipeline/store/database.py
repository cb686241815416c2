"""Engines, sessions and migrations for SQLite (embedded) and PostgreSQL (production).

SQLite needs three things to serve as a queue shared by the API and workers: WAL so readers
never wait for the writer, a busy timeout instead of immediate "database is locked", and
``BEGIN IMMEDIATE`` for claiming so two workers cannot both read a row as queued.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from pipeline.store import wakeups

__all__ = [
    "Database",
    "alembic_config",
    "current_revision",
    "head_revision",
    "migrate",
    "open_database",
]

IMMEDIATE = "pipeline_sqlite_immediate"


def _migrations_dir() -> Path:
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_migrations", here.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise RuntimeError(f"migrations not found next to {here}")


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(IMMEDIATE)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _postgres_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # JIT compiles any plan above jit_above_cost, and a short statement over a large table (a
        # matrix of many cells at 5M promotions) spent 1.06 s compiling to run for 50 ms. Set
        # per connection, not as a startup option, which PgBouncer refuses.
        with dbapi_conn.cursor() as cur:
            cur.execute("SET jit = off")
        dbapi_conn.commit()


class Database:
    """An engine plus a session factory; ``session()`` is the only way code gets a transaction."""

    def __init__(self, url: str, pool_size: int = 40) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            _sqlite_setup(self.engine)
        else:
            # As many pooled connections as the API's threadpool runs requests (anyio's 40): a smaller
            # pool made every burst open and close connections, 8 ms each. Stale connections are
            # recycled by age instead of a ping before every checkout, one round trip saved.
            self.engine = create_engine(
                url, pool_size=pool_size, max_overflow=10, pool_recycle=1800, pool_use_lifo=True
            )
            _postgres_setup(self.engine)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        wakeups.install(self._factory)

    @contextmanager
    def session(self, *, immediate: bool = False) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back when it raises.

        ``immediate`` takes SQLite's write lock at BEGIN; PostgreSQL needs no such thing
        because claims there use ``FOR UPDATE SKIP LOCKED``.
        """
        with self._factory() as session:
            if immediate and self.dialect == "sqlite":
                session.connection(execution_options={IMMEDIATE: True})
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str, pool_size: int = 40) -> Database:
    return Database(url, pool_size)


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision``; the only way the schema ever changes."""
    cfg = alembic_config(db.url)
    # a plain connection: Alembic runs the transaction, so a migration may step out of it
    # (CREATE INDEX CONCURRENTLY on PostgreSQL)
    with db.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
