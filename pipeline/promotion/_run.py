"""One claimed promotion, start to finish, as an ordered list of steps (Kargo's shape).

Each step is a function registered under a kebab-case kind; an environment's steps are
derived from its config, so a new capability (signing, Git write-back) is one function and
one registration, not a branch in here. Steps are idempotent: a promotion retried after a
lost lease runs them again and each finds its work done.

A step that changes what others see (a signature, a Git push, the tag) runs only while the
worker's claim holds: the executor checks the claim right before it, and the tag moves in a
fenced transaction that also checks the tag still points where the environment's history
says (``ClaimScope.fenced``). A worker that stalled past its lease wakes up to touch nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from pipeline.claims import ClaimScope
from pipeline.config import Config, EnvironmentConfig, ProjectConfig
from pipeline.errors import ConfigError, Conflict, LeaseLost, PipelineError
from pipeline.promotion._locations import Location, build_location, environment_location, environment_tag
from pipeline.promotion._policy import refusal
from pipeline.promotion._signatures import SignatureRefused, copy_signatures, sign_image, verify_signature
from pipeline.promotion._writeback import AwaitingMerge, push_to_git
from pipeline.registry import RegistryClient, copy_image
from pipeline.store import Build, Database, Promotion, builds, promotions, utcnow

__all__ = ["PromotionOutcome", "PromotionPaused", "PromotionRefused", "StepContext", "run_promotion", "step_registry"]

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
        return {"gitops_pull_request": self.pull_request, "gitops_commit": self.gitops_commit,
                "copy_report": self.copy_report, "steps": self.steps, "error": None, "finished_at": None}


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


class TagMoved(Conflict):
    """The environment tag no longer points where the history says: someone else moved it."""


@dataclass
class StepContext:
    """What a step may use; steps talk to registries only through ``client()``."""

    scope: ClaimScope
    config: Config
    project: ProjectConfig
    env: EnvironmentConfig
    promotion: Promotion
    build: Build
    current: Promotion | None
    source: Location
    target: Location
    tag: str
    _clients: ExitStack
    _open: dict[str, RegistryClient] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def db(self) -> Database:
        return self.scope.db

    def client(self, location: Location) -> RegistryClient:
        """One client per registry for the whole promotion, so tokens and connections are reused."""
        host = location.registry.host
        if host not in self._open:
            self._open[host] = self._clients.enter_context(RegistryClient(location.registry))
        return self._open[host]


Step = Callable[[StepContext], str]


def _copy_image(ctx: StepContext) -> str:
    """Copy by digest (the tag moves last, in ``move-tag``); nothing when the environment already runs it."""
    target = ctx.client(ctx.target)
    digest = ctx.promotion.digest
    already = target.find_manifest(ctx.target.repository, ctx.tag)
    if ctx.current is not None and ctx.current.digest == digest and already and already.digest == digest:
        ctx.outputs["noop"] = True
        return f"{ctx.target.ref(digest, ctx.tag)} is already current; nothing to copy"
    report = copy_image(ctx.client(ctx.source), ctx.source.repository, target, ctx.target.repository, digest,
                        tags=[])
    report.tags.append(ctx.tag)  # the report describes the whole promotion: move-tag points it
    ctx.outputs["copy_report"] = report.to_dict()
    return (f"copied {report.blobs_copied} blobs ({report.blobs_present} already there, "
            f"{report.blobs_mounted} mounted, {report.bytes_copied} bytes) to {ctx.target.name}@{digest}")


def _move_tag(ctx: StepContext) -> str:
    """Point the environment tag at the digest, last, in a fenced transaction: only while the
    claim holds and the tag still points at what the environment runs by its history (or at
    nothing, or already at this digest). Movers of one tag take turns on the fence's lock."""
    target, repository, digest = ctx.client(ctx.target), ctx.target.repository, ctx.promotion.digest
    if ctx.outputs.get("noop"):
        return f"{ctx.tag} already points at {digest}"
    manifest = target.manifest(repository, digest)
    with ctx.scope.fenced(f"tag {ctx.target.ref(digest, ctx.tag)}") as session:
        current = promotions.current(session, ctx.promotion.project, ctx.promotion.environment)
        found = target.find_manifest(repository, ctx.tag)
        if found is not None and found.digest != digest and (current is None or found.digest != current.digest):
            raise TagMoved(_moved_by_whom(session, ctx, found.digest, current))
        target.tag(repository, ctx.tag, manifest)
    return f"{ctx.tag} now points at {digest}"


def _moved_by_whom(session: Any, ctx: StepContext, found: str, current: Promotion | None) -> str:
    where = f"{ctx.target.name}:{ctx.tag}"
    runs = f"promotion {current.id} ({current.digest})" if current else "nothing"
    newer = [p for p in promotions.promotions_of_digest(session, found)
             if p.project == ctx.promotion.project and p.environment == ctx.promotion.environment
             and p.id > ctx.promotion.id]
    if newer:
        return f"superseded by promotion {newer[0].id}: {where} points at {found}; left as it is"
    return (f"{where} points at {found}, but by its history the environment runs {runs}: it was moved "
            "outside this service; left as it is (promote again to take it over)")


# steps whose work others see the moment it is done: run only while the claim holds
VISIBLE = frozenset({"copy-signatures", "sign", "git-push", "move-tag"})


def step_registry() -> dict[str, Step]:
    """Every step kind, listed explicitly: importing a module registers nothing."""
    return {
        "verify-signature": verify_signature,
        "copy-image": _copy_image,
        "copy-signatures": copy_signatures,
        "sign": sign_image,
        "git-push": push_to_git,
        "move-tag": _move_tag,
    }


def steps_for(env: EnvironmentConfig) -> list[str]:
    """Verify before anything lands, copy by digest, bring signatures, sign, write to Git, and
    move the tag last: whoever pulls the environment tag finds the signatures there, and a
    refused Git push leaves the tag where it was."""
    return [*(["verify-signature"] if env.verify else []), "copy-image", "copy-signatures",
            *(["sign"] if env.sign else []), *(["git-push"] if env.gitops else []), "move-tag"]


def _source(session: Any, config: Config, project: ProjectConfig, env: EnvironmentConfig,
            promotion: Promotion) -> Location:
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
        yield StepContext(scope, config, project, env, promotion, build, current, source,
                          environment_location(config, env), environment_tag(env, promotion.project, build), clients)


def run_promotion(scope: ClaimScope, config: Config,
                  promotion_id: int) -> PromotionOutcome | PromotionRefused | PromotionPaused:
    """Run the steps of one promotion not done yet (a promotion resumed after its pull request
    was merged starts after the write-back); raises ``PipelineError`` when a step fails and
    ``LeaseLost`` once the claim is gone (the step it would have run touches nothing)."""
    registry = step_registry()
    db = scope.db
    scope.check_lease()  # a worker that stalled between its claim and now starts nothing
    with _context(scope, config, promotion_id) as ctx:
        if isinstance(ctx, PromotionRefused):
            return ctx
        done = [step for step in ctx.promotion.steps if step.get("status") in _DONE]
        finished = {step["kind"] for step in done}
        for kind in steps_for(ctx.env):
            if kind in finished:
                continue
            started = utcnow()
            try:
                if kind in VISIBLE or scope.should_stop():
                    scope.check_lease()
                message = registry[kind](ctx)
            except AwaitingMerge as paused:
                done.append(_step(kind, "awaiting_merge", paused.message, started))
                return PromotionPaused(paused.pull_request.url, ctx.outputs.get("gitops_commit"),
                                       ctx.outputs.get("copy_report"), done)
            except SignatureRefused as exc:
                done.append(_step(kind, "refused", exc.message, started))
                _save_steps(scope, done)
                return PromotionRefused(exc.message)
            except LeaseLost as exc:
                log.warning("promotion %s: %s: stopped before it: %s", promotion_id, kind, exc.message)
                raise
            except PipelineError as exc:
                done.append(_step(kind, "failed", exc.message, started))
                _save_steps(scope, done)
                raise
            done.append(_step(kind, "succeeded", message, started))
            _save_steps(scope, done)
            log.info("promotion %s: %s: %s", promotion_id, kind, message)
        with db.session() as session:
            pointer = _rollback_pointer(session, ctx.promotion, ctx.current, bool(ctx.outputs.get("noop")))
        return PromotionOutcome(
            source_ref=ctx.source.ref(ctx.promotion.digest),
            target_ref=ctx.target.ref(ctx.promotion.digest, ctx.tag),
            previous_digest=ctx.current.digest if ctx.current else None,
            rollback_to_id=pointer,
            copy_report=ctx.outputs.get("copy_report", ctx.promotion.copy_report),
            gitops_commit=ctx.outputs.get("gitops_commit", ctx.promotion.gitops_commit),
            steps=done,
        )


def _step(kind: str, status: str, message: str, started: Any) -> dict[str, Any]:
    return {"kind": kind, "status": status, "message": message, "started_at": started.isoformat(),
            "finished_at": utcnow().isoformat()}


def _save_steps(scope: ClaimScope, steps: list[dict[str, Any]]) -> None:
    """Progress is written only by the claim's holder: a stalled worker's late steps are dropped."""
    if scope.job is None:
        return
    with scope.db.session() as session:
        promotions.record_steps(session, scope.job, steps)
