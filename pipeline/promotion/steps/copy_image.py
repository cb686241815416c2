"""``copy-image``: the exact digest, registry to registry, blobs the target lacks first and the
manifest by digest last; the environment tag is not touched here (``move-tag`` moves it last)."""

from __future__ import annotations

from pipeline.promotion.steps._contract import StepContext, StepInfo, StepResult
from pipeline.registry import copy_image as copy_by_digest

__all__ = ["IMAGE_COPIER", "copy_image"]


def copy_image(ctx: StepContext) -> StepResult:
    """Copy by digest; nothing when the environment already runs it (and its tag says so)."""
    target = ctx.client(ctx.target)
    digest = ctx.promotion.digest
    already = target.find_manifest(ctx.target.repository, ctx.tag)
    if ctx.current is not None and ctx.current.digest == digest and already and already.digest == digest:
        return StepResult(
            f"{ctx.target.ref(digest, ctx.tag)} is already current; nothing to copy", output={"noop": True}
        )
    report = copy_by_digest(
        ctx.client(ctx.source), ctx.source.repository, target, ctx.target.repository, digest, tags=[]
    )
    report.tags.append(ctx.tag)  # the report describes the whole promotion: move-tag points it
    return StepResult(
        f"copied {report.blobs_copied} blobs ({report.blobs_present} already there, "
        f"{report.blobs_mounted} mounted, {report.bytes_copied} bytes) to {ctx.target.name}@{digest}",
        output={"copy_report": report.to_dict()},
    )


IMAGE_COPIER = StepInfo(
    "copy-image", copy_image, reads=("source image by digest",), writes=("target blobs and manifest by digest",)
)
