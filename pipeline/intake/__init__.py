"""Intake: a Git host's push webhook becomes queued builds, or a recorded reason why not.

Nothing in a payload chooses what is cloned or built: the payload only names a repository,
which must match a configured project, and that project's config says where to clone from.
Intake decides (``_decide``: parse, find the project, verify, read the pushes, filter) and
``store.deliveries`` records the decision through its one write path, on a session here or on
the async pool of the webhook route (``_async``). Every delivery is logged, refusals included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from pipeline.config import Config
from pipeline.errors import NotFound, PipelineError
from pipeline.intake._accept import Accepted, accept_pushes
from pipeline.intake._decide import MAX_BODY_BYTES, Decision, IntakeResult, decide, refusal
from pipeline.intake._event import PushEvent
from pipeline.intake._matching import normalize_repo
from pipeline.intake._poll import poll_project
from pipeline.intake._providers import PROVIDERS
from pipeline.store import Database, deliveries, utcnow
from pipeline.store.tables import Delivery

__all__ = [
    "MAX_BODY_BYTES",
    "PROVIDERS",
    "Accepted",
    "Decision",
    "IntakeResult",
    "Pool",
    "PushEvent",
    "accept_pushes",
    "decide",
    "normalize_repo",
    "open_pool",
    "poll_project",
    "receive",
    "receive_async",
    "record",
    "record_decision",
    "redeliver",
    "refused",
]


def receive(
    db: Database,
    config: Config,
    provider: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    remote_addr: str | None = None,
) -> IntakeResult:
    """Handle one delivery; raises ``PipelineError`` subclasses for refusals (4xx), once logged."""
    return record(db, decide(config, provider, headers, body, remote_addr=remote_addr, now=utcnow()))


def record(db: Database, decision: Decision) -> IntakeResult:
    """Record a decided delivery in one transaction (the synchronous path) and answer it.

    On SQLite the transaction takes the write lock at once: its steps read before they write,
    and two deliveries upgrading a read lock at once would fail instead of waiting."""
    with db.session(immediate=True) as session:
        recorded = deliveries.record(session, decision.record)
    return decision.answer(recorded)


def refused(
    provider: str, headers: Mapping[str, str], size: int, remote_addr: str | None, exc: PipelineError
) -> Decision:
    """The log row of a delivery refused before intake could read it (a body over the limit)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return refusal(provider, lowered, size, remote_addr, utcnow(), exc)


def redeliver(db: Database, config: Config, delivery_id: int, actor: str) -> IntakeResult:
    """Run intake again on a stored delivery's body, as the Git host's own Redeliver does.

    Its signature verified when it arrived (only accepted deliveries keep a body), so it is not
    checked again; it is never a duplicate of the original, and is logged as its redelivery.
    """
    with db.session() as session:
        row = session.get(Delivery, delivery_id)
        if row is None:
            raise NotFound(f"no delivery {delivery_id}")
        if row.body is None:
            raise NotFound(
                f"delivery {delivery_id} has no stored body (refused, a duplicate, or older than "
                f"intake.keep_bodies_days); redeliver it from the Git host instead"
            )
        provider, headers, body = row.provider, dict(row.headers or {}), row.body
    decision = decide(
        config, provider, headers, body, remote_addr=f"redelivery by {actor}"[:100], now=utcnow(), verify=False
    )
    rec = decision.record
    if decision.error is None:
        rec = replace(rec, dedupe_key=None, window_start=None, redelivery_of=delivery_id)
    return record(db, Decision(rec, decision.error))


# the PostgreSQL fast path reads this module's functions, so it is imported once they exist
from pipeline.intake._async import Pool, open_pool, receive_async, record_decision  # noqa: E402
