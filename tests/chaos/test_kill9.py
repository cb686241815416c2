"""SIGKILL of real ``pipeline worker`` processes at every step of promotions and builds, against
PostgreSQL, a real registry and real Git (see ``tests/chaos/harness.py`` for how the step is
found and checked): afterwards nothing is lost, nothing is duplicated, the registry tags and the
deploy repository say what the database says, and nothing stays running.

The seed is printed; ``CHAOS_SEED=N`` replays a run's choices (the timing of the machine varies).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.chaos import harness
from tests.chaos.conftest import PgDatabase
from tests.services import DockerEngine, Registry

PROMOTION_KILLS = 34


def test_kill9_at_every_promotion_step_loses_and_duplicates_nothing(
    tmp_path: Path, pg_database: PgDatabase, registry: Registry, chaos_seed: int
) -> None:
    setup, build_ids = harness.promotion_setup(
        tmp_path, pg_database.db, pg_database.url, registry.host, secrets.token_hex(3)
    )
    report = harness.kill_promotions(setup, build_ids, kills=PROMOTION_KILLS, seed=chaos_seed)
    harness.say(report.summary())
    for kill in report.kills:
        harness.say(f"  {kill}")
    assert len(report.kills) >= PROMOTION_KILLS
    landed = {k.landed.split(":")[1] for k in report.kills}
    assert landed >= {"verify-signature", "copy-image", "copy-signatures", "sign", "git-push", "move-tag"}, landed
    assert report.problems == [], "\n".join(report.problems)


BUILD_KILLS = 16


def test_kill9_at_every_build_step_loses_and_duplicates_nothing(
    tmp_path: Path, pg_database: PgDatabase, registry: Registry, engine: DockerEngine, base_image: str, chaos_seed: int
) -> None:
    setup = harness.build_setup(
        tmp_path, pg_database.db, pg_database.url, registry.host, engine.host, base_image, secrets.token_hex(3)
    )
    report = harness.kill_builds(setup, kills=BUILD_KILLS, seed=chaos_seed)
    harness.say(report.summary())
    for kill in report.kills:
        harness.say(f"  {kill}")
    assert len(report.kills) >= BUILD_KILLS
    assert set(report.landed()) >= set(harness.BUILD_STEPS), report.landed()
    assert report.problems == [], "\n".join(report.problems)
