"""One claimed build, start to finish: the steps of ``_steps`` in order, under the claim.

The job owns the build's work directory and log; the worker owns the claim and how a
failure ends the row. A step that raises ends the build (the worker fails or retries it);
the claim lost between steps (cancelled, superseded, reaped) stops it before the next one.
"""

from __future__ import annotations

import logging
import shutil
from concurrent.futures import ThreadPoolExecutor

from pipeline.build._logs import LogSink
from pipeline.build._steps import STEPS, BuildContext, BuildSkipped, OnRecorded, Recorded
from pipeline.claims import ClaimScope
from pipeline.config import Config
from pipeline.errors import ConfigError, LeaseLost, PipelineError
from pipeline.store import builds

__all__ = ["run_build"]

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
        for name, step in STEPS:
            if scope.should_stop():
                scope.check_lease()  # raises LeaseLost with the reason: cancelled, superseded
            log.debug("build %s: step %s", build_id, name)
            if skipped := step(ctx):
                sink(f"skipped: {skipped.reason}")
                return skipped
            if ctx.reused_from is not None and ctx.recorded is not None:
                return ctx.recorded  # an image of the same commit and inputs was re-tagged
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
