"""The webhook route's path on PostgreSQL: no session, no thread, one statement on an async pool.

Under load the synchronous path spent most of its time waiting: for a threadpool thread, for
the GIL those threads share, and in SQLAlchemy's session and connection machinery around a
statement that is already a single round trip. Here the decision (parse, match, verify,
filter) is made on the event loop, and ``store.deliveries.record_async`` sends the delivery's
one statement (the same one ``record`` runs on a session) to PostgreSQL on a small pool
(``Pool``) of autocommit ``psycopg.AsyncConnection``s. SQLite takes the session path in the
threadpool.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus
from starlette.concurrency import run_in_threadpool

from pipeline.config import Config
from pipeline.intake import record
from pipeline.intake._decide import Decision, IntakeResult, decide
from pipeline.store import Database, deliveries, utcnow

__all__ = ["APPLICATION_NAME", "POOL_SIZE", "Pool", "conninfo", "open_pool", "receive_async", "record_decision"]

log = logging.getLogger(__name__)

# Per API process. PostgreSQL runs on the same few cores: more statements in flight than it has
# cores only queue inside PostgreSQL, while each extra backend costs memory and lock traffic.
POOL_SIZE = 4
# Bodies larger than this are parsed in the threadpool, so one huge payload does not stall the
# event loop for every other request.
INLINE_BODY_BYTES = 256 * 1024
CHECKOUT_TIMEOUT = 30.0  # seconds a delivery waits for a free connection, as SQLAlchemy's pool does
MAX_LIFETIME = 1800.0  # seconds before a connection is replaced, as the engine's pool_recycle
APPLICATION_NAME = "pipeline-intake"  # how its connections show in pg_stat_activity


def conninfo(db: Database) -> str:
    """The libpq connection string of the database's SQLAlchemy URL."""
    _, kwargs = db.engine.dialect.create_connect_args(db.engine.url)
    kwargs.pop("context", None)
    kwargs.setdefault("application_name", APPLICATION_NAME)
    return make_conninfo(**{k: v for k, v in kwargs.items() if v is not None})


def open_pool(db: Database, size: int = POOL_SIZE) -> Pool:
    """A pool of autocommit connections to ``db``; they are made on first use."""
    return Pool(conninfo(db), size)


async def receive_async(
    pool: Pool | None,
    db: Database,
    config: Config,
    provider: str,
    headers: dict[str, str],
    body: bytes,
    *,
    remote_addr: str | None = None,
) -> IntakeResult:
    """``intake.receive`` for the webhook route: the same decision, the same statement."""
    if len(body) > INLINE_BODY_BYTES:
        decision = await run_in_threadpool(
            functools.partial(decide, config, provider, headers, body, remote_addr=remote_addr, now=utcnow())
        )
    else:
        decision = decide(config, provider, headers, body, remote_addr=remote_addr, now=utcnow())
    return await record_decision(pool, db, decision)


async def record_decision(pool: Pool | None, db: Database, decision: Decision) -> IntakeResult:
    """Record on the pool when there is one, else on a session in the threadpool."""
    if pool is None:
        return await run_in_threadpool(record, db, decision)
    recorded = await deliveries.record_async(functools.partial(_execute, pool), decision.record)
    return decision.answer(recorded)


async def _execute(pool: Pool, sql: str, values: dict[str, Any]) -> Any:
    """One autocommit statement and its one row (None when it returned none).

    A connection that broke while idle (the server restarted, a proxy closed it) fails at once;
    the pool drops it with the other idle ones, and the statement is tried once more on a new
    connection. Should it have broken only after the statement committed, the retry finds the
    delivery recorded and answers ``duplicate``: nothing is queued twice.
    """
    for attempt in (1, 2):
        async with pool.connection() as conn:
            try:
                cursor = await conn.execute(sql, values)
                return await cursor.fetchone()
            except psycopg.OperationalError:
                if attempt == 2 or not conn.broken:
                    raise
                log.warning("intake: a pooled PostgreSQL connection was broken; retrying on another")
    raise AssertionError("unreachable")


class Pool:
    """A fixed number of autocommit connections, handed out last-in first-out.

    Lighter than ``psycopg_pool``'s checkout (a ``wait_for`` task, a check loop, statistics),
    which cost an eighth of a delivery's CPU. Connections are made on demand; one that broke is
    dropped when it comes back, and the next checkout makes a new one.
    """

    def __init__(self, conninfo: str, size: int) -> None:
        self._conninfo, self._size = conninfo, size
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._waiters: collections.deque[asyncio.Future[psycopg.AsyncConnection[Any] | None]] = collections.deque()
        self._born: dict[int, float] = {}
        self._count = 0  # connections made and not dropped, idle or in use
        self._closed = False
        self._closing: set[asyncio.Future[None]] = set()

    async def _get(self) -> psycopg.AsyncConnection[Any]:
        while True:
            if self._closed:
                raise psycopg.OperationalError("the intake connection pool is closed")
            if self._idle:
                return self._idle.pop()
            if self._count < self._size:
                self._count += 1
                try:
                    conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                    self._born[id(conn)] = time.monotonic()
                    return conn
                except BaseException:
                    self._count -= 1
                    self._wake(None)
                    raise
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[psycopg.AsyncConnection[Any] | None] = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_later(CHECKOUT_TIMEOUT, _expire, waiter)
            try:
                handed = await waiter
            except BaseException:
                if (
                    waiter.done()
                    and not waiter.cancelled()
                    and waiter.exception() is None
                    and (late := waiter.result())
                ):
                    self._put(late)  # handed over just as this task was cancelled
                raise
            finally:
                timer.cancel()
            if handed is not None:
                return handed
            # None: a connection was dropped, so there is room to make one

    def _wake(self, conn: psycopg.AsyncConnection[Any] | None) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    def _put(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if conn.broken:
            # the server went away or restarted: the idle ones are most likely broken as well
            for idle in self._idle:
                self._drop(idle)
            self._idle.clear()
        if (
            self._closed
            or conn.broken
            or conn.closed
            or conn.info.transaction_status != TransactionStatus.IDLE
            or time.monotonic() - self._born.get(id(conn), 0) > MAX_LIFETIME
        ):
            self._drop(conn)
        elif not self._wake(conn):
            self._idle.append(conn)

    def _drop(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._count -= 1
        self._born.pop(id(conn), None)
        self._closing.add(task := asyncio.ensure_future(conn.close()))
        task.add_done_callback(self._closing.discard)
        self._wake(None)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        conn = await self._get()
        try:
            yield conn
        finally:
            self._put(conn)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._drop(conn)
        while self._wake(None):
            pass
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(
            psycopg.OperationalError(f"no PostgreSQL connection free for intake after {CHECKOUT_TIMEOUT:g} s")
        )
