"""One claimed promotion, start to finish: its steps (``steps/``), run in order under the claim.

The executor knows nothing of what a step does: it looks each kind up in the registry, checks
the worker's claim before a step whose writes others see at once (``StepInfo.visible``),
records every step as it ends so a resumed promotion starts after the last one done, and maps
the result that stops the run (refused, awaiting a merge, retry later) to the promotion's
outcome. ``execute`` is that loop alone, so a step's contract is tested without registries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from pipeline.claims import ClaimScope
from pipeline.config import Config, EnvironmentConfig, ProjectConfig
from pipeline.errors import ConfigError, LeaseLost, PipelineError, UpstreamError
from pipeline.promotion._locations import Location, build_location, environment_location, environment_tag
from pipeline.promotion._policy import refusal
from pipeline.promotion.steps import StepContext, StepRegistry, StepResult, build_default_registry, steps_for
from pipeline.store import Promotion, builds, promotions, utcnow

__all__ = [
    "Executed",
    "PromotionOutcome",
    "PromotionPaused",
    "PromotionRefused",
    "StepRetry",
    "execute",
    "run_promotion",
]

_DONE = ("succeeded", "merged")  # steps a resumed promotion does not run again

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromotionRefused:
    """The policy said no when the worker looked (rejected meanwhile, held, not upstream)."""

    reason: str


@dataclass(frozen=True)
class PromotionPaused:
    """The write-back opened a pull request; the promotion resumes once it is merged."""

    pull_request: str
    gitops_commit: str | None
    copy_report: dict[str, Any] | None
    steps: list[dict[str, Any]]

    def columns(self) -> dict[str, Any]:
        return {
            "gitops_pull_request": self.pull_request,
            "gitops_commit": self.gitops_commit,
            "copy_report": self.copy_report,
            "steps": self.steps,
            "error": None,
            "finished_at": None,
        }


@dataclass(frozen=True)
class PromotionOutcome:
    """Everything recorded on a succeeded promotion row."""

    source_ref: str
    target_ref: str
    previous_digest: str | None
    rollback_to_id: int | None
    copy_report: dict[str, Any] | None
    gitops_commit: str | None
    steps: list[dict[str, Any]]

    def columns(self) -> dict[str, Any]:
        return dict(self.__dict__) | {"error": None}


def _source(
    session: Any, config: Config, project: ProjectConfig, env: EnvironmentConfig, promotion: Promotion
) -> Location:
    """Copy from the stage before when the digest arrived there, else from where it was built."""
    if env.requires and promotions.was_promoted(session, promotion.project, env.requires, promotion.digest):
        return environment_location(config, project.environment(env.requires))
    return build_location(config, project)


def _rollback_pointer(session: Any, promotion: Promotion, current: Promotion | None, noop: bool) -> int | None:
    if promotion.trigger == "rollback" and promotion.restores_id is not None:
        return promotions.get_promotion(session, promotion.restores_id).rollback_to_id
    if noop and current is not None:
        return current.rollback_to_id
    return current.id if current is not None else None


@contextmanager
def _context(scope: ClaimScope, config: Config, promotion_id: int) -> Iterator[StepContext | PromotionRefused]:
    with scope.db.session() as session:
        promotion = promotions.get_promotion(session, promotion_id)
        if promotion.attempts > 1:  # where each try begins, in the service log
            why = (promotion.error or "").removeprefix("will retry: ") or "the worker stopped sending heartbeats"
            log.warning(
                "promotion %s: attempt %s of %s after: %s",
                promotion_id,
                promotion.attempts,
                config.worker.max_attempts,
                why,
            )
        project = config.projects.get(promotion.project)
        if project is None:
            raise ConfigError(f"project {promotion.project!r} is no longer in the config")
        env = project.environment(promotion.environment)
        if refused := refusal(session, project, promotion):
            yield PromotionRefused(refused)
            return
        build = builds.get_build(session, promotion.build_id) if promotion.build_id else None
        if build is None:
            raise ConfigError(f"promotion {promotion_id} names no build")
        current = promotions.current(session, promotion.project, promotion.environment)
        source = _source(session, config, project, env, promotion)
    with ExitStack() as clients:
        yield StepContext(
            scope,
            config,
            project,
            env,
            promotion,
            build,
            current,
            source,
            environment_location(config, env),
            environment_tag(env, promotion.project, build),
            clients,
        )


class StepRetry(UpstreamError):
    """A step asked to be run again later (``StepResult.retry_after``)."""

    retryable = True

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Executed:
    """The steps as recorded, and the result that stopped the run early (None: all ran)."""

    steps: list[dict[str, Any]]
    stopped_by: StepResult | None = None


def execute(
    ctx: StepContext,
    kinds: list[str],
    registry: StepRegistry,
    done: list[dict[str, Any]],
    *,
    save: Callable[[list[dict[str, Any]]], None],
) -> Executed:
    """Run the ``kinds`` not already done, in order; ``save`` records the steps after each one.

    A step's ``PipelineError`` is recorded as its failure and raised; ``LeaseLost`` (the claim
    is gone) is raised before the step runs and records nothing.
    """
    records = [step for step in done if step.get("status") in _DONE]
    finished = {step["kind"] for step in records}
    for kind in kinds:
        if kind in finished:
            continue
        info = registry[kind]
        started = utcnow()
        try:
            if info.visible or ctx.scope.should_stop():
                ctx.scope.check_lease()
            result = info.run(ctx)
        except LeaseLost as exc:
            log.warning("promotion %s: %s: stopped before it: %s", ctx.promotion.id, kind, exc.message)
            raise
        except PipelineError as exc:
            records.append(_step(kind, "failed", exc.message, started, getattr(exc, "record", None)))
            save(records)
            raise
        ctx.outputs.update(result.output)
        records.append(_step(kind, result.status, result.message, started, result.record))
        if result.status == "awaiting_merge":  # recorded with the paused promotion
            return Executed(records, result)
        save(records)
        if result.status != "succeeded":
            return Executed(records, result)
        log.info("promotion %s: %s: %s", ctx.promotion.id, kind, result.message)
    return Executed(records)


def run_promotion(
    scope: ClaimScope,
    config: Config,
    promotion_id: int,
    registry: StepRegistry | None = None,
) -> PromotionOutcome | PromotionRefused | PromotionPaused:
    """Run the steps of one promotion not done yet (a promotion resumed after its pull request
    was merged starts after the write-back); raises ``PipelineError`` when a step fails and
    ``LeaseLost`` once the claim is gone (the step it would have run touches nothing)."""
    registry = registry or build_default_registry()
    scope.check_lease()  # a worker that stalled between its claim and now starts nothing
    with _context(scope, config, promotion_id) as ctx:
        if isinstance(ctx, PromotionRefused):
            return ctx
        executed = execute(
            ctx, steps_for(ctx.env), registry, ctx.promotion.steps, save=lambda steps: _save_steps(scope, steps)
        )
        stop = executed.stopped_by
        if stop is not None and stop.status == "refused":
            return PromotionRefused(stop.message)
        if stop is not None and stop.status == "awaiting_merge":
            return PromotionPaused(
                str(ctx.outputs["pull_request"]),
                ctx.outputs.get("gitops_commit"),
                ctx.outputs.get("copy_report"),
                executed.steps,
            )
        if stop is not None:
            raise StepRetry(stop.message, stop.retry_after or 0.0)
        with scope.db.session() as session:
            pointer = _rollback_pointer(session, ctx.promotion, ctx.current, bool(ctx.outputs.get("noop")))
        return PromotionOutcome(
            source_ref=ctx.source.ref(ctx.promotion.digest),
            target_ref=ctx.target.ref(ctx.promotion.digest, ctx.tag),
            previous_digest=ctx.current.digest if ctx.current else None,
            rollback_to_id=pointer,
            copy_report=ctx.outputs.get("copy_report", ctx.promotion.copy_report),
            gitops_commit=ctx.outputs.get("gitops_commit", ctx.promotion.gitops_commit),
            steps=executed.steps,
        )


def _step(kind: str, status: str, message: str, started: Any, record: Any = None) -> dict[str, Any]:
    """A step's entry; ``record`` adds what the step keeps besides its message (a container log)."""
    finished = utcnow()
    return {
        **(record or {}),
        "kind": kind,
        "status": status,
        "message": message,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "seconds": round((finished - started).total_seconds(), 3),
    }


def _save_steps(scope: ClaimScope, steps: list[dict[str, Any]]) -> None:
    """Progress is written only by the claim's holder: a stalled worker's late steps are dropped."""
    if scope.job is None:
        return
    with scope.db.session() as session:
        promotions.record_steps(session, scope.job, steps)
