"""``move-tag``: the environment tag points at the digest, last of all the steps.

It moves in a fenced transaction (``ClaimScope.fenced``): only while the worker's claim holds,
and only when the tag still points where the environment's history says (at what it runs, at
nothing yet, or already at this digest). Movers of one tag take turns on the fence's lock, so
the check and the move never interleave with another promotion's; what remains is a worker
that loses its lock's connection between the check and the PUT (the registry has no
compare-and-swap), a window of one registry request.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from pipeline.errors import Conflict
from pipeline.promotion.steps._contract import StepContext, StepInfo, StepResult
from pipeline.store import Promotion, promotions

__all__ = ["TAG_MOVER", "TagMoved", "move_tag", "tag_lock"]


class TagMoved(Conflict):
    """The environment tag no longer points where the history says: someone else moved it."""


def move_tag(ctx: StepContext) -> StepResult:
    target, repository, digest = ctx.client(ctx.target), ctx.target.repository, ctx.promotion.digest
    if ctx.outputs.get("noop"):
        return StepResult(f"{ctx.tag} already points at {digest}")
    manifest = target.manifest(repository, digest)
    with ctx.scope.fenced(tag_lock(ctx)) as session:
        current = promotions.current(session, ctx.promotion.project, ctx.promotion.environment)
        found = target.find_manifest(repository, ctx.tag)
        if found is not None and found.digest != digest and (current is None or found.digest != current.digest):
            raise TagMoved(_moved_by_whom(session, ctx, found.digest, current))
        target.tag(repository, ctx.tag, manifest)
    return StepResult(f"{ctx.tag} now points at {digest}")


def tag_lock(ctx: StepContext) -> str:
    """The fence's lock: one per environment tag, whatever digest each mover brings."""
    return f"tag {ctx.target.name}:{ctx.tag}"


def _moved_by_whom(session: Session, ctx: StepContext, found: str, current: Promotion | None) -> str:
    where = f"{ctx.target.name}:{ctx.tag}"
    runs = f"promotion {current.id} ({current.digest})" if current else "nothing"
    newer = [
        p
        for p in promotions.promotions_of_digest(session, found)
        if p.project == ctx.promotion.project and p.environment == ctx.promotion.environment and p.id > ctx.promotion.id
    ]
    if newer:
        return f"superseded by promotion {newer[0].id}: {where} points at {found}; left as it is"
    return (
        f"{where} points at {found}, but by its history the environment runs {runs}: it was moved "
        "outside this service; left as it is (promote again to take it over)"
    )


TAG_MOVER = StepInfo(
    "move-tag", move_tag, reads=("environment history", "target tag"), writes=("target tag",), visible=True
)
