"""How `pipeline builds show` and `pipeline promotions show` word a build's timings and a
promotion's copy report and step durations (the API's JSON in, the table's text out)."""

from __future__ import annotations

from rich.console import Console

from pipeline.cli._ops import _copied, _promotion_fields, _timings


def _text(table: object) -> str:
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text()


def test_timings_in_step_order_with_units() -> None:
    said = _timings({"queue": 0.84, "checkout": 0.4, "build": 125.0, "push": 12.0})
    assert said == "queue 0.8 s, checkout 0.4 s, build 2.1 min, push 12 s"
    assert _timings(None) is None and _timings({}) is None


def test_a_promotion_shows_its_copy_report_and_each_steps_seconds() -> None:
    report = {"blobs_copied": 2, "bytes_copied": 4_200_000, "blobs_present": 1, "blobs_mounted": 3}
    assert _copied(report) == "2 blobs copied (4200000 bytes), 1 skipped (present), 3 mounted"
    assert _copied(None) is None
    promotion = {
        "id": 7, "project": "demo", "environment": "prod", "digest": "sha256:" + "a" * 64, "build_id": 3,
        "status": "succeeded", "trigger": "manual", "actor": "ops", "reason": "", "source_ref": None,
        "target_ref": None, "previous_digest": None, "error": None, "copy_report": report,
        "steps": [
            {"kind": "copy-image", "status": "succeeded", "message": "copied 2 blobs", "seconds": 3.25},
            {"kind": "move-tag", "status": "succeeded", "message": "prod now points at it"},  # recorded before seconds
        ],
    }  # fmt: skip
    text = _text(_promotion_fields(promotion))
    assert "2 blobs copied (4200000 bytes), 1 skipped (present), 3 mounted" in text
    assert "succeeded in 3.2 s: copied 2 blobs" in text and "succeeded: prod now points at it" in text
