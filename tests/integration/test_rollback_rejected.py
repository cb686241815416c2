"""A rejected digest that still runs somewhere is flagged in the matrix (API, CLI), a rollback
passes over rejected digests to the newest earlier one that is not and says which it skipped,
and a hold's refusal names every way to release it. Real registries and workers; the build rows
are seeded for images skopeo pushed (as in test_promotion)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rich.console import Console

from pipeline.cli._ops import _matrix_table
from pipeline.config import Config
from pipeline.promotion._rollback import rollback_target
from pipeline.store import Database, promotions
from tests.conftest import app_client, token_headers
from tests.integration.test_promotion import IMAGES, built, config, matrix, promote, pushed, work  # noqa: F401


@pytest.fixture
def api(db: Database, config: Config) -> Iterator[TestClient]:
    yield from app_client(db, config, actor="ops@example.com")


def _reject(api: TestClient, db: Database, digest: str, reason: str) -> None:
    answer = api.post(
        f"/api/v1/images/{digest}/reject", json={"reason": reason}, headers=token_headers(db, "sec", "promoter")
    )
    assert answer.status_code == 200, answer.text


def _envs_text(data: dict[str, Any]) -> str:
    console = Console(width=250, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(_matrix_table(data))
    return console.export_text()


def test_rollback_skips_rejected_digests_and_the_matrix_flags_them(
    db: Database, config: Config, built: dict[str, int], pushed: dict[str, str], api: TestClient
) -> None:
    ids = {}
    for tag in IMAGES:
        ids[tag] = promote(api, "dev", build_id=built[tag])["id"]
        assert work(db, config) == 1
    dev = matrix(api)["dev"]
    assert dev["rejected"] is None and dev["skipped"] == [] and dev["previous"]["digest"] == pushed["v2"]

    _reject(api, db, pushed["v2"], "CVE-2026-0002 in libbar")
    _reject(api, db, pushed["v3"], "leaks the session cookie")
    dev = matrix(api)["dev"]
    assert dev["current"]["digest"] == pushed["v3"]  # it still runs: rejection moves nothing
    assert dev["rejected"]["reason"] == "leaks the session cookie" and dev["rejected"]["actor"] == "sec"
    assert dev["previous"]["digest"] == pushed["v1"], "the matrix's previous is what a rollback restores"
    assert [s["digest"] for s in dev["skipped"]] == [pushed["v2"]]
    text = _envs_text(api.get("/api/v1/environments").json())
    [row] = [line for line in text.splitlines() if line.split()[:2] == ["demo", "dev"]]
    assert f"{pushed['v3'][7:19]} REJECTED" in row and "(skips 1 rejected)" in row
    [staging] = [line for line in text.splitlines() if line.split()[:2] == ["demo", "staging"]]
    assert "REJECTED" not in staging

    rolled = api.post("/api/v1/environments/demo/dev/rollback", json={"reason": "v3 leaks cookies"})
    assert rolled.status_code == 202, rolled.text
    body = rolled.json()
    assert body["digest"] == pushed["v1"] and body["restores_id"] == ids["v1"]
    assert body["reason"].startswith("v3 leaks cookies; skipped rejected ")
    assert f"{pushed['v2']} (promotion {ids['v2']}, rejected: CVE-2026-0002 in libbar)" in body["reason"]
    assert work(db, config) == 1
    dev = matrix(api)["dev"]
    assert dev["current"]["digest"] == pushed["v1"] and dev["rejected"] is None and dev["previous"] is None

    # the hold the rollback placed: its refusal names the CLI command, the page's button and the REST call
    refused = api.post("/api/v1/promotions", json={"project": "demo", "environment": "dev", "build_id": built["v1"]})
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert "`pipeline release demo dev`" in detail and "Release button" in detail
    assert "POST /api/v1/environments/demo/dev/release" in detail

    _reject(api, db, pushed["v1"], "all bad")
    with db.session() as session:  # every digest on the way back rejected: nothing to restore
        walked = rollback_target(session, promotions.get_promotion(session, ids["v3"]))
        assert walked.restored is None
        assert [s.promotion.id for s in walked.skipped] == [ids["v3"], ids["v2"], ids["v1"]]
