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


def _run_a_duty_twice() -> None:
    """A real APScheduler running a duty (as workers/scheduler.py does) until it has run twice."""
    import threading

    from apscheduler.schedulers.background import BackgroundScheduler

    ran = threading.Semaphore(0)
    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(ran.release, "interval", seconds=0.05, id="reap-expired-leases")
    scheduler.start()
    try:
        assert ran.acquire(timeout=30) and ran.acquire(timeout=30)
    finally:
        scheduler.shutdown(wait=True)


def test_scheduler_per_run_lines_are_debug_only(
    root: logging.Logger, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PIPELINE_LOG_FORMAT", raising=False)
    monkeypatch.delenv("PIPELINE_LOG_LEVEL", raising=False)
    setup_logging()
    _run_a_duty_twice()
    logging.getLogger("apscheduler.executors.default").warning("Run time of job x was missed by 0:00:02")
    logging.getLogger("pipeline.test").info("a line of ours")
    lines = capsys.readouterr().err.splitlines()
    assert not [line for line in lines if "Running job" in line or "executed successfully" in line], lines
    assert any("WARNING apscheduler.executors.default: Run time of job x was missed" in line for line in lines)
    assert any(line.endswith("INFO pipeline.test: a line of ours") for line in lines)

    monkeypatch.setenv("PIPELINE_LOG_LEVEL", "debug")
    setup_logging()
    _run_a_duty_twice()
    lines = capsys.readouterr().err.splitlines()
    assert any("DEBUG apscheduler.executors.default: Running job" in line for line in lines), lines
    assert any("executed successfully" in line for line in lines)


def test_a_bad_log_level_names_the_variable(root: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.errors import ConfigError

    monkeypatch.setenv("PIPELINE_LOG_LEVEL", "verbose")
    with pytest.raises(ConfigError, match="PIPELINE_LOG_LEVEL is 'verbose'; use one of debug, info, warning, error"):
        setup_logging()
