"""A promoting worker frozen (SIGSTOP) past its lease while another worker finishes its
promotion and a newer one, then woken (SIGCONT): it touches nothing. Real processes,
PostgreSQL, a real registry and real Git; ``worker.lease_seconds`` 2 and ``reap_seconds`` 1.

A worker frozen inside a locked region (the fenced transaction of move-tag, the Git lock of
git-push) keeps the lock while frozen: the other worker waits for it up to a lease, then gives
the promotion back to the queue (``LockBusy``, no try used up) and waits its turn there, so the
tag or the branch cannot move under the frozen one and no worker hangs on the lock."""

from __future__ import annotations

import random
import secrets
from pathlib import Path

import pytest

from tests.chaos import harness
from tests.chaos.conftest import PgDatabase
from tests.services import Registry


@pytest.mark.parametrize("step", ["copy-image", "sign", "git-push", "move-tag"])
def test_a_worker_frozen_past_its_lease_touches_nothing_when_it_wakes(
    step: str, tmp_path: Path, pg_database: PgDatabase, registry: Registry, chaos_seed: int
) -> None:
    setup, build_ids = harness.promotion_setup(
        tmp_path, pg_database.db, pg_database.url, registry.host, secrets.token_hex(3), images=6
    )
    freeze = harness.freeze_promotion(setup, build_ids, step, random.Random(chaos_seed))
    harness.say(f"{freeze}")
    assert freeze.problems == [], "\n".join(freeze.problems)
    assert freeze.late_log, "the woken worker did not notice it had lost its claim"
    # Either the other worker finished both promotions while the first was frozen, or the
    # first froze inside a locked region (the tag's fence, the Git write-back lock) and the
    # other waited for it: then nobody could move that tag or push meanwhile, which is what
    # keeps a late registry PUT from undoing a newer promotion (no compare-and-swap there).
    assert freeze.finished_while_frozen or freeze.waited_on_lock, (
        f"promotion {freeze.frozen} did not finish while its first worker was frozen, and nobody waited on a lock"
    )
