"""One claimed build, start to finish: the steps of ``_steps`` in order, under the claim.

The job owns the build's work directory and log; the worker owns the claim and how a
failure ends the row. A step that raises ends the build (the worker fails or retries it);
the claim lost between steps (cancelled, superseded, reaped) stops it before the next one.
"""

from __future__ import annotations

import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

from pipeline.build._logs import LogSink
from pipeline.build._steps import STEPS, BuildContext, BuildSkipped, OnRecorded, Recorded
from pipeline.claims import ClaimScope
from pipeline.config import Config
from pipeline.errors import ConfigError, LeaseLost, PipelineError
from pipeline.store import Build, builds

__all__ = ["attempt_marker", "run_build"]

log = logging.getLogger(__name__)


def _context(
    scope: ClaimScope,
    config: Config,
    build_id: int,
    sink: LogSink,
    background: ThreadPoolExecutor,
    on_recorded: OnRecorded | None,
) -> BuildContext:
    with scope.db.session() as session:
        build = builds.get_build(session, build_id)
    project = config.projects.get(build.project)
    if project is None:
        raise ConfigError(f"project {build.project!r} is no longer in the config")
    workdir = config.data_dir / "work" / f"build-{build_id}"
    shutil.rmtree(workdir, ignore_errors=True)  # an earlier attempt's leftovers
    return BuildContext(config, project, build, scope, sink, workdir, background, on_recorded)


def attempt_marker(build: Build, max_attempts: int) -> str | None:
    """``— attempt 2 of 3 after: <why the last one stopped> —`` for a build taken again, so
    that a log holding several attempts says where each begins; ``None`` for a first attempt."""
    if build.attempts <= 1:
        return None
    why = (build.error or "").removeprefix("will retry: ") or "the worker running it stopped sending heartbeats"
    return f"— attempt {build.attempts} of {max_attempts} after: {why} —"


def _queued_for(build: Build) -> float:
    """From the request to this attempt's claim (a retried build counts its backoff too)."""
    if build.started_at is None:
        return 0.0
    return round(max((build.started_at - build.created_at).total_seconds(), 0.0), 3)


def _record_timings(scope: ClaimScope, build_id: int, timings: dict[str, float]) -> None:
    """Seconds per step so far, visible while the build runs and kept when it fails; a failure
    to write them only warns (it must not hide the step's own error)."""
    try:
        with scope.db.session() as session:
            builds.record_progress(session, build_id, timings=dict(timings))
    except Exception:
        log.warning("build %s: could not record step timings", build_id, exc_info=True)


def run_build(
    scope: ClaimScope, config: Config, build_id: int, *, on_recorded: OnRecorded | None = None
) -> Recorded | BuildSkipped:
    """Run the build's steps; the record step writes the digest (and calls ``on_recorded`` in
    the same transaction). Raises ``PipelineError`` on a failure, ``LeaseLost`` once the claim
    is gone; any other exception is a bug, left to the worker to record."""
    sink = LogSink(scope.db, build_id)
    background = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"build-{build_id}")
    ctx: BuildContext | None = None
    try:
        ctx = _context(scope, config, build_id, sink, background, on_recorded)
        if marker := attempt_marker(ctx.build, config.worker.max_attempts):
            sink(marker)
            log.info("build %s: %s", build_id, marker.strip("— "))
        timings = {"queue": _queued_for(ctx.build)}
        for name, step in STEPS:
            if scope.should_stop():
                scope.check_lease()  # raises LeaseLost with the reason: cancelled, superseded
            log.debug("build %s: step %s", build_id, name)
            started = time.monotonic()
            try:
                skipped = step(ctx)
            finally:
                timings[name] = round(time.monotonic() - started, 3)
                _record_timings(scope, build_id, timings)
            if skipped:
                sink(f"skipped: {skipped.reason}")
                return skipped
        assert ctx.recorded is not None, "the record step ran"
        return ctx.recorded
    except LeaseLost as exc:
        sink(f"stopped: {exc.message}")
        raise
    except PipelineError as exc:
        sink(f"error: {exc.message}")
        raise
    finally:
        background.shutdown(wait=False, cancel_futures=True)
        sink.close()
        if ctx is not None:
            shutil.rmtree(ctx.workdir, ignore_errors=True)
