"""The promotion executor's contract with in-memory steps: no registry, database or network, so
each rule is checked in milliseconds. The real steps run against real registries in
tests/integration/test_promotion*.py."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from pipeline.claims import ClaimScope
from pipeline.config import parse_config
from pipeline.errors import ConfigError, LeaseLost, RegistryError
from pipeline.promotion import (
    StepContext,
    StepInfo,
    StepRegistry,
    StepResult,
    build_default_registry,
    execute,
    steps_for,
)
from pipeline.promotion._locations import build_location, environment_location
from pipeline.store import Build, Promotion

DIGEST = "sha256:" + "d" * 64
CONFIG = parse_config(
    {
        "registries": {"r": {"url": "127.0.0.1:5000"}},
        "projects": {
            "demo": {
                "repo": "https://git.example.com/acme/demo.git",
                "allow_unsigned": True,
                "image": {"registry": "r", "repository": "acme/demo"},
                "environments": [{"name": "dev", "registry": "r", "repository": "acme/dev"}],
            }
        },
    }
)


class Scope(ClaimScope):
    """A claim that holds until told otherwise, counting its checks."""

    def __init__(self) -> None:
        super().__init__(None, None)  # type: ignore[arg-type]
        self.checks = 0
        self.lost = False

    def check_lease(self) -> None:
        self.checks += 1
        if self.lost:
            raise LeaseLost("promotion 7: lease lost: claim 1 by w1 was taken over by claim 2 of w2")


def _context(scope: Scope, done: list[dict[str, Any]] | None = None) -> StepContext:
    project = CONFIG.project("demo")
    env = project.environment("dev")
    promotion = Promotion(id=7, project="demo", environment="dev", digest=DIGEST, steps=done or [])
    build = Build(id=3, project="demo", commit="c" * 40, ref="refs/heads/main", branch="main")
    return StepContext(
        scope,
        CONFIG,
        project,
        env,
        promotion,
        build,
        None,
        build_location(CONFIG, project),
        environment_location(CONFIG, env),
        "dev",
        ExitStack(),
    )


class Recorder:
    """In-memory steps that note the order they ran in and answer what they were told to."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.saved: list[list[dict[str, Any]]] = []

    def step(self, kind: str, result: StepResult | Exception | None = None, *, visible: bool = False) -> StepInfo:
        def run(ctx: StepContext) -> StepResult:
            self.ran.append(kind)
            if isinstance(result, Exception):
                raise result
            return result or StepResult(f"{kind} done", output={f"{kind}-seen": list(ctx.outputs)})

        return StepInfo(kind, run, reads=(), writes=(), visible=visible)

    def save(self, steps: list[dict[str, Any]]) -> None:
        self.saved.append([dict(s) for s in steps])


def test_steps_run_in_order_and_each_sees_what_the_earlier_ones_answered() -> None:
    rec, scope = Recorder(), Scope()
    registry = StepRegistry([rec.step("a"), rec.step("b", visible=True), rec.step("c")])
    ctx = _context(scope)
    executed = execute(ctx, ["a", "b", "c"], registry, [], save=rec.save)
    assert rec.ran == ["a", "b", "c"] and executed.stopped_by is None
    assert ctx.outputs["c-seen"] == ["a-seen", "b-seen"]
    assert [(s["kind"], s["status"], s["message"]) for s in executed.steps] == [
        ("a", "succeeded", "a done"),
        ("b", "succeeded", "b done"),
        ("c", "succeeded", "c done"),
    ]
    assert [len(s) for s in rec.saved] == [1, 2, 3], "progress recorded after every step"
    assert scope.checks == 1, "the claim is checked before the visible step only"


def test_a_resumed_promotion_starts_after_the_steps_already_done() -> None:
    rec = Recorder()
    registry = StepRegistry([rec.step("a"), rec.step("b"), rec.step("c")])
    done = [
        {"kind": "a", "status": "succeeded", "message": "a done"},
        {"kind": "b", "status": "merged", "message": "b done; merged"},
        {"kind": "c", "status": "failed", "message": "c broke"},
    ]
    executed = execute(_context(Scope(), done), ["a", "b", "c"], registry, done, save=rec.save)
    assert rec.ran == ["c"], "a failed step runs again, done ones do not"
    assert [s["status"] for s in executed.steps] == ["succeeded", "merged", "succeeded"]


def test_a_lost_claim_stops_before_a_visible_step_and_records_nothing() -> None:
    rec, scope = Recorder(), Scope()
    registry = StepRegistry([rec.step("copy"), rec.step("move-tag", visible=True)])
    scope.lost = True
    with pytest.raises(LeaseLost, match="taken over by claim 2"):
        execute(_context(scope), ["copy", "move-tag"], registry, [], save=rec.save)
    assert rec.ran == ["copy"], "the visible step ran although the claim was lost"
    assert [[s["kind"] for s in saved] for saved in rec.saved] == [["copy"]]


def test_a_failing_step_is_recorded_as_failed_and_ends_the_run() -> None:
    rec = Recorder()
    registry = StepRegistry([rec.step("a", RegistryError("registry.example.com answered 503")), rec.step("b")])
    with pytest.raises(RegistryError):
        execute(_context(Scope()), ["a", "b"], registry, [], save=rec.save)
    assert rec.ran == ["a"]
    assert [(s["kind"], s["status"], s["message"]) for s in rec.saved[-1]] == [
        ("a", "failed", "registry.example.com answered 503")
    ]


@pytest.mark.parametrize("status", ["refused", "awaiting_merge", "retry"])
def test_a_result_other_than_success_stops_the_run_there(status: str) -> None:
    rec = Recorder()
    stop = StepResult("not now", status=status, retry_after=30 if status == "retry" else None)  # type: ignore[arg-type]
    registry = StepRegistry([rec.step("a", stop), rec.step("b")])
    executed = execute(_context(Scope()), ["a", "b"], registry, [], save=rec.save)
    assert rec.ran == ["a"] and executed.stopped_by == stop
    assert executed.steps[-1]["status"] == status
    assert bool(rec.saved) == (status != "awaiting_merge"), "a pause is recorded with the paused promotion"


def test_an_unknown_kind_is_a_clear_config_error() -> None:
    registry = StepRegistry([Recorder().step("a")])
    with pytest.raises(ConfigError, match="no promotion step of kind 'b'; known: a"):
        execute(_context(Scope()), ["a", "b"], registry, [], save=lambda steps: None)
    with pytest.raises(ValueError, match="registered twice"):
        StepRegistry([Recorder().step("a"), Recorder().step("a")])


def test_the_default_registry_has_every_kind_an_environment_can_need(tmp_path: Path) -> None:
    registry = build_default_registry()
    key = tmp_path / "cosign.key"
    key.write_text("not read by this test")
    data = CONFIG.model_dump(mode="json")
    data["signing"] = {"key_file": str(key)}
    data["projects"]["demo"]["environments"][0].update(
        verify=[str(key)],
        sign=True,
        gitops={"repo": "https://git.example.com/acme/deploy.git", "path": "dev/values.yaml", "key": "image"},
        smoke_test={"probe": {"exec": ["true"]}},
    )
    everything = parse_config(data).project("demo").environment("dev")
    kinds = steps_for(everything)
    assert kinds == [
        "verify-signature",
        "copy-image",
        "smoke-test",  # after the copy (it runs the target's bytes), before anything others see
        "copy-signatures",
        "sign",
        "git-push",
        "move-tag",
    ]
    assert all(kind in registry for kind in kinds) and registry.kinds() == sorted(kinds, key=kinds.index)
    visible = {kind for kind in kinds if registry[kind].visible}
    assert visible == {"copy-signatures", "sign", "git-push", "move-tag"}
    assert steps_for(CONFIG.project("demo").environment("dev")) == ["copy-image", "copy-signatures", "move-tag"]
