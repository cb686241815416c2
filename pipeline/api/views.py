"""What each detail view of the web page shows, gathered in one place per view so that the
routes stay thin and the templates only lay it out.

A build: its facts, step timings, the Dockerfile steps read back from its log (cached or not,
seconds), the image's layers with the instruction that made each, waste and efficiency, the
Dockerfile advice, the change against the previous build, its provenance and its log. A
promotion: its steps with durations, the copy report, signing, the write-back commit. An image:
its lineage from commit to build to every environment, its signing and its rejection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from pipeline import insight, promotion
from pipeline.config import Config
from pipeline.errors import InvalidRequest
from pipeline.store import Build, Promotion, RejectedDigest, builds, promotions
from pipeline.types import is_digest

__all__ = ["BuildView", "ImageView", "PromotionView", "build_view", "image_view", "promotion_view"]

LOG_LINES_SHOWN = 5000
_SIGNING_STEPS = ("sign", "copy-signatures", "verify-signature")
_TIMED = ("queue", "resolve", "checkout", "build", "push", "record", "insight")


@dataclass(frozen=True)
class Timing:
    name: str
    seconds: float
    share: float  # of the longest one, 0-1: the bar's length


def timings(values: dict[str, Any] | None) -> list[Timing]:
    """The build's timings in step order, each with its share of the longest."""
    found = {k: float(v) for k, v in (values or {}).items() if isinstance(v, (int, float))}
    top = max(found.values(), default=0.0) or 1.0
    order = [name for name in _TIMED if name in found] + [name for name in found if name not in _TIMED]
    return [Timing(name, found[name], found[name] / top) for name in order]


@dataclass(frozen=True)
class BuildView:
    build: Build
    timings: list[Timing]
    steps: list[insight.BuildStep]
    layers: list[dict[str, Any]]
    insight: dict[str, Any] | None
    compared: dict[str, Any] | None
    previous: Build | None
    promotions: list[Promotion]
    log: list[str]
    log_cut: bool


def build_view(session: Session, build_id: int) -> BuildView:
    build = builds.get_build(session, build_id)
    rows = builds.read_logs(session, build_id, limit=LOG_LINES_SHOWN + 1)
    log = [row.line for row in rows[:LOG_LINES_SHOWN]]
    found = build.insight or None
    previous = builds.last_succeeded(session, build.project, [build.ref], build.id)
    moved = promotions.promotions_of_digest(session, build.digest) if build.digest else []
    return BuildView(
        build,
        timings(build.timings),
        insight.build_steps(log),
        [layer for layer in (found or {}).get("layers", []) if isinstance(layer, dict)],
        found,
        (found or {}).get("compared"),
        previous,
        [p for p in moved if p.build_id == build.id or p.build_id is None],
        log,
        len(rows) > LOG_LINES_SHOWN,
    )


@dataclass(frozen=True)
class PromotionView:
    promotion: Promotion
    build: Build | None
    steps: list[dict[str, Any]]
    signing: list[dict[str, Any]]
    copy_report: dict[str, Any] | None
    restores: Promotion | None
    rejection: RejectedDigest | None


def promotion_view(session: Session, promotion_id: int) -> PromotionView:
    row = promotions.get_promotion(session, promotion_id)
    build = builds.get_build(session, row.build_id) if row.build_id else None
    steps = [s for s in row.steps if isinstance(s, dict)]
    restores = promotions.get_promotion(session, row.restores_id) if row.restores_id else None
    return PromotionView(
        row,
        build,
        steps,
        [s for s in steps if s.get("kind") in _SIGNING_STEPS],
        row.copy_report,
        restores,
        promotions.rejection(session, row.digest),
    )


@dataclass(frozen=True)
class Stay:
    """One environment of the image's lineage: every promotion of the digest into it."""

    project: str
    environment: str
    running: bool
    promotions: list[Promotion] = field(default_factory=list)


@dataclass(frozen=True)
class ImageView:
    lineage: promotion.ImageLineage
    commits: list[str]
    stays: list[Stay]
    signing: list[tuple[Promotion, dict[str, Any]]]


def image_view(session: Session, config: Config, digest: str) -> ImageView:
    if not is_digest(digest):
        raise InvalidRequest(f"digest must look like sha256:<64 lowercase hex>, got {digest[:80]!r}")
    lineage = promotion.image_lineage(session, config, digest)
    stays: dict[tuple[str, str], Stay] = {}
    made_by = {b.project for b in lineage.builds} | {p.project for p in lineage.promotions}
    for name, project in config.projects.items():  # every environment of its project, in config order
        if name in made_by:
            for env in project.environments:
                stays[(name, env.name)] = Stay(name, env.name, f"{name}/{env.name}" in lineage.environments)
    for p in lineage.promotions:
        where = (p.project, p.environment)
        stays.setdefault(where, Stay(p.project, p.environment, False)).promotions.append(p)
    signing = [
        (p, s) for p in lineage.promotions for s in p.steps if isinstance(s, dict) and s.get("kind") in _SIGNING_STEPS
    ]
    return ImageView(lineage, list(dict.fromkeys(b.commit for b in lineage.builds)), list(stays.values()), signing)
