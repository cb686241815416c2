"""What must hold before a digest may enter an environment.

Checked when a promotion is asked for (so the asker hears at once) and again when a worker
starts it (a digest may have been rejected, the environment held, or the image deleted by the
cleanup in between: the build rows are read locked, so a cleanup deleting the digest right now
is waited for and then seen).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from pipeline.config import ProjectConfig
from pipeline.store import Promotion, promotions, retention

__all__ = ["refusal"]


def refusal(session: Session, project: ProjectConfig, promotion: Promotion) -> str | None:
    """Why the policy refuses ``promotion``, or ``None`` when it may go ahead."""
    env = project.environment(promotion.environment)
    if deleted := retention.deleted_image(session, promotion.project, promotion.digest):
        return (
            f"{promotion.digest} was deleted from the build registry by the cleanup on "
            f"{deleted.image_deleted_at:%Y-%m-%d %H:%M} UTC (build {deleted.id}, commit {deleted.commit[:12]}); "
            "build that commit again to promote it"
        )
    if rejected := promotions.rejection(session, promotion.digest):
        return (
            f"{promotion.digest} was rejected by {rejected.actor} on "
            f"{rejected.created_at:%Y-%m-%d %H:%M} UTC: {rejected.reason}"
        )
    if env.requires and not promotions.was_promoted(session, promotion.project, env.requires, promotion.digest):
        return (
            f"{promotion.digest} has not reached {env.requires} yet; {env.name} takes only digests "
            f"promoted to {env.requires} first"
        )
    hold = promotions.active_hold(session, promotion.project, env.name)
    if hold is not None and promotion.trigger != "rollback":
        return (
            f"{env.name} is held since {hold.created_at:%Y-%m-%d %H:%M} UTC by {hold.actor} ({hold.reason}); "
            f"release it first: `pipeline release {promotion.project} {env.name}`, the Release button of "
            f"{promotion.project}/{env.name} on the web page, or POST "
            f"/api/v1/environments/{promotion.project}/{env.name}/release"
        )
    return None
