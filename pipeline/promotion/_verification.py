"""Verification after promotion (``verify_after``): ask what the environment serves once its tag
moved, every ``interval`` until it answers the new version or ``timeout`` passes.

A verification is a queue row of its own (``store.jobs.VERIFICATIONS``), queued in the
transaction that records the promotion succeeded, so in pull-request mode only after the merge
and the tag move. A worker's claim is one check: a miss gives the row back until the next one
(without counting a try), so a ten-minute verification holds no worker and no lease meanwhile.
The outcome is kept on the verification (``verified``, or ``verification_failed`` with the last
answer); with ``auto_rollback`` a failure rolls the environment back and holds it, saying why.
A promotion that no longer runs (a newer one arrived) is not judged: ``superseded``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from pipeline import notify
from pipeline.claims import ClaimScope
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.promotion._answers import ask
from pipeline.promotion._requests import request_rollback
from pipeline.store import Promotion, Verification, builds, promotions, utcnow, verifications

__all__ = ["Checked", "check_verification", "conclude_verification", "queue_verification"]

log = logging.getLogger(__name__)


def _values(promotion: Promotion, session: Session) -> dict[str, str]:
    build = builds.get_build(session, promotion.build_id) if promotion.build_id else None
    commit = build.commit if build else ""
    return {
        "environment": promotion.environment,
        "project": promotion.project,
        "sha": commit,
        "short_sha": commit[:7],
        "branch": (build.branch or "") if build else "",
        "build_id": str(build.id) if build else "",
        "digest": promotion.digest,
    }


def queue_verification(session: Session, config: Config, promotion: Promotion) -> Verification | None:
    """The check of a promotion that just succeeded, when its environment asks for one."""
    project = config.projects.get(promotion.project)
    env = next((e for e in project.environments if e.name == promotion.environment), None) if project else None
    verify = env.verify_after if env else None
    if verify is None:
        return None
    values = _values(promotion, session)
    return verifications.add_verification(
        session,
        promotion_id=promotion.id,
        project=promotion.project,
        environment=promotion.environment,
        url=verify.http.format(**values),
        expect_status=verify.expect_status,
        expect_body=verify.expect_body_contains.format(**values) if verify.expect_body_contains else None,
        interval_seconds=verify.interval,
        deadline_at=utcnow() + dt.timedelta(seconds=verify.timeout),
        auto_rollback=verify.auto_rollback,
    )


@dataclass(frozen=True)
class Checked:
    """One check's verdict: ``retry`` (ask again in ``delay`` s) or the verification's end."""

    status: str  # retry, verified, verification_failed, superseded
    message: str
    note: dict[str, Any] = field(default_factory=dict)  # columns to keep: checks, last_answer
    delay: float = 0.0
    roll_back: bool = False


def _expected(row: Verification) -> str:
    body = f" with {row.expect_body!r} in the body" if row.expect_body else ""
    return f"{row.expect_status}{body}"


def check_verification(scope: ClaimScope, config: Config, verification_id: int) -> Checked:
    """Ask once; decide whether the verification is over."""
    with scope.db.session() as session:
        row = verifications.get_verification(session, verification_id)
        current = promotions.current(session, row.project, row.environment)
    if current is None or current.id != row.promotion_id:
        now = f"promotion {current.id}" if current else "nothing"
        return Checked("superseded", f"promotion {row.promotion_id} no longer runs in {row.environment} ({now} does)")
    answer = ask(row.url, timeout=min(max(row.interval_seconds, 1.0), 10.0))
    checks = row.checks + 1
    note = {"checks": checks, "last_answer": answer.to_dict()}
    if answer.passes(row.expect_status, row.expect_body):
        return Checked("verified", f"verified after {checks} checks: {answer.describe()}", note)
    if utcnow() + dt.timedelta(seconds=row.interval_seconds) > row.deadline_at:
        waited = (row.deadline_at - row.created_at).total_seconds()
        return Checked(
            "verification_failed",
            f"{row.environment} did not answer {_expected(row)} within {waited:g} s ({checks} checks); "
            f"last answer: {answer.describe()}",
            note,
            roll_back=row.auto_rollback,
        )
    return Checked(
        "retry", f"waiting for {_expected(row)}: check {checks}: {answer.describe()}", note, row.interval_seconds
    )


def verification_failed(
    session: Session, config: Config, row: Verification, promotion: Promotion, message: str, rollback_id: int | None
) -> None:
    """The one call site of the ``verification.failed`` notification, in the transaction that
    records the failure (and the rollback it queued, if any)."""
    log.warning("promotion %s: verification failed: %s", promotion.id, message)
    rolled = f"; rolled back by promotion {rollback_id}" if rollback_id else ""
    notify.report_event(
        session,
        config,
        "verification.failed",
        project=row.project,
        environment=row.environment,
        subject=f"verification:{row.id}",
        data={
            "verification": {
                "id": row.id,
                "promotion_id": promotion.id,
                "digest": promotion.digest,
                "url": row.url,
                "expect_status": row.expect_status,
                "expect_body": row.expect_body,
                "checks": row.checks,
                "last_answer": row.last_answer,
                "error": message,
                "rollback_id": rollback_id,
            }
        },
        title=f"{row.project}/{row.environment}: verification of promotion {promotion.id} failed{rolled}",
        promotion_id=promotion.id,
    )


def conclude_verification(session: Session, config: Config, verification_id: int, checked: Checked) -> None:
    """In the transaction that released or finished the claim: keep what the check saw and, on
    failure, notify and roll back (only what still runs, never a rollback's own verification)."""
    verifications.note(session, verification_id, **checked.note)
    if checked.status != "verification_failed":
        return
    row = verifications.get_verification(session, verification_id)
    promotion = promotions.get_promotion(session, row.promotion_id)
    rollback_id = _roll_back(session, config, row, promotion, checked) if checked.roll_back else None
    session.refresh(row)
    verification_failed(session, config, row, promotion, checked.message, rollback_id)


def _roll_back(
    session: Session, config: Config, row: Verification, promotion: Promotion, checked: Checked
) -> int | None:
    """Roll back what still runs and hold the environment; never a rollback's own verification."""
    if promotion.trigger == "rollback":
        verifications.note(session, row.id, error=f"{checked.message}; a rollback is not rolled back again")
        return None
    reason = f"verification of promotion {promotion.id} failed: {checked.message}"
    try:
        rollback = request_rollback(
            session, config, row.project, row.environment, actor="verification", reason=reason, hold_reason=reason
        )
    except PipelineError as exc:
        verifications.note(session, row.id, error=f"{checked.message}; not rolled back: {exc.message}")
        return None
    verifications.note(session, row.id, rollback_id=rollback.id)
    log.warning("promotion %s: rolled back by promotion %s and held: %s", promotion.id, rollback.id, reason)
    return rollback.id
