"""``smoke-test``: run the exact digest from the target registry and probe it before its tag moves.

It runs after ``copy-image``, so what starts is the bytes now in the target, pulled by digest,
and before anything others see (signatures, the Git write-back, the tag): a candidate that
exits, never answers or answers wrong fails the promotion with the environment tag where it
was. The container runs on a docker builder (``smoke_test.engine``, else the first one), is
probed every ``probe.interval`` until ``timeout``, and is removed however the step ends (passed,
failed, timed out, the worker's claim lost); its log is kept in the step's entry either way.
"""

from __future__ import annotations

import secrets
import time

from pipeline.builder import BuilderPool, Engine, RunningContainer, remove_labelled, running_container
from pipeline.config import SmokeTestConfig
from pipeline.errors import EngineError, LeaseLost, SmokeTestFailed
from pipeline.promotion._answers import ask
from pipeline.promotion.steps._contract import StepContext, StepInfo, StepResult

__all__ = ["SMOKE_TESTER", "smoke_test"]

LABEL = "org.pipeline.promotion"  # which promotion a smoke-test container belongs to
_LOG_LINES, _LINE_CHARS = 200, 500


def _engine(ctx: StepContext, smoke: SmokeTestConfig) -> Engine:
    builder = ctx.config.smoke_builder(smoke)
    status = BuilderPool.from_config(ctx.config).status(builder)
    if not status.healthy or status.engine is None:
        raise EngineError(f"smoke test: builder {builder.name} cannot run containers now: {status.detail}")
    return status.engine


def _stop_if_lost(ctx: StepContext) -> None:
    """The heartbeat found the claim gone: stop (the container goes with the block)."""
    if ctx.scope.should_stop():
        ctx.scope.check_lease()
        raise LeaseLost(f"promotion {ctx.promotion.id}: the claim was lost during the smoke test")


def _probe_once(container: RunningContainer, smoke: SmokeTestConfig, budget: float) -> tuple[bool, str, object]:
    """One probe: (passed, what it saw, the answer as data)."""
    probe = smoke.probe
    if probe.exec is not None:
        code, output = container.execute(probe.exec, timeout=max(budget, 1.0))
        seen = f"{' '.join(probe.exec)} exited {code}" + (f": {output[-200:]}" if output else "")
        return code == 0, seen, {"exec": probe.exec, "exit_code": code, "output": output}
    assert container.address is not None and probe.http is not None
    host, port = container.address
    answer = ask(f"http://{host}:{port}{probe.http}", timeout=max(min(budget, 5.0), 0.2))
    return answer.passes(probe.expect_status, probe.expect_body), answer.describe(), answer.to_dict()


def _wait(ctx: StepContext, container: RunningContainer, smoke: SmokeTestConfig) -> tuple[bool, str, object]:
    """Probe until it passes, the container exits, or ``timeout`` runs out."""
    started = time.monotonic()
    deadline = started + smoke.timeout
    tries = 0
    while True:
        _stop_if_lost(ctx)
        running, code = container.state()
        tries += 1
        passed, seen, answer = _probe_once(container, smoke, deadline - time.monotonic())
        took = time.monotonic() - started
        if passed:
            return True, f"probe passed after {took:.1f} s ({tries} tries): {seen}", answer
        if not running:
            return False, f"the container exited with code {code} before its probe passed (last probe: {seen})", answer
        if time.monotonic() + smoke.probe.interval > deadline:
            return False, f"no passing probe within {smoke.timeout:g} s ({tries} tries); last: {seen}", answer
        time.sleep(smoke.probe.interval)


def smoke_test(ctx: StepContext) -> StepResult:
    smoke = ctx.env.smoke_test
    assert smoke is not None
    digest = ctx.promotion.digest
    if ctx.outputs.get("noop"):
        return StepResult(f"the environment already runs {digest}; not smoke-tested again")
    engine = _engine(ctx, smoke)
    image = f"{ctx.target.registry.host}/{ctx.target.repository}@{digest}"
    remove_labelled(engine, LABEL, str(ctx.promotion.id))  # left by a worker that died mid-test
    started = time.monotonic()
    record: dict[str, object] = {"engine": engine.name, "image": image}
    try:
        with running_container(
            engine,
            image,
            name=f"pipeline-smoke-{ctx.promotion.id}-{secrets.token_hex(4)}",
            labels={LABEL: str(ctx.promotion.id), "org.pipeline.environment": ctx.env.name},
            env=smoke.run.env,
            command=smoke.run.command,
            port=smoke.run.port,
            registry=ctx.target.registry.host,
            credentials=ctx.target.registry.credentials(),
            pull_timeout=smoke.pull_timeout,
            docker_config=str(ctx.target.registry.docker_config) if ctx.target.registry.docker_config else None,
            should_stop=ctx.scope.should_stop,
        ) as container:
            record["network"] = container.network
            ready = time.monotonic()
            try:
                passed, seen, answer = _wait(ctx, container, smoke)
            finally:
                record["log"] = [line[:_LINE_CHARS] for line in container.logs(_LOG_LINES)]
            probed = time.monotonic()
    except EngineError:
        _stop_if_lost(ctx)
        raise
    ended = time.monotonic()
    timings = {"pull_and_start": ready - started, "probe": probed - ready, "remove": ended - probed}
    record |= {
        "probe": answer,
        "seconds": round(ended - started, 3),
        "timings": {name: round(value, 3) for name, value in timings.items()},
    }
    if not passed:
        raise SmokeTestFailed(f"smoke test of {image} on {engine.name} failed: {seen}", record)
    return StepResult(f"smoke test of {image} on {engine.name} passed: {seen}", record=record)


SMOKE_TESTER = StepInfo(
    "smoke-test",
    smoke_test,
    reads=("target image by digest",),
    writes=("a container on a builder engine, removed when the step ends",),
)
