"""JSON log lines carry the job they belong to; plain text stays plain."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from pipeline.logs import job_context, setup_logging


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    logger = logging.getLogger()
    kept, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = kept
    logger.setLevel(level)


def test_json_lines_name_the_build_or_promotion(root: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("json")
    log = logging.getLogger("pipeline.test")
    with job_context(build_id=42):
        log.info("pushed %s", "sha256:abc")
    with job_context(promotion_id=7):
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("step failed")
    log.warning("outside any job")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["message"] == "pushed sha256:abc" and lines[0]["build_id"] == 42
    assert lines[0]["level"] == "info" and lines[0]["logger"] == "pipeline.test" and lines[0]["time"].endswith("+00:00")
    assert lines[1]["promotion_id"] == 7 and "ValueError: boom" in lines[1]["exception"]
    assert "build_id" not in lines[2] and "promotion_id" not in lines[2]


def test_plain_text_by_default(
    root: logging.Logger, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PIPELINE_LOG_FORMAT", raising=False)
    setup_logging()
    logging.getLogger("pipeline.test").info("hello")
    line = capsys.readouterr().err.strip()
    assert line.endswith("INFO pipeline.test: hello") and not line.startswith("{")
