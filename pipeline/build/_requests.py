"""Builds asked for by people (API, CLI) rather than by a push: a ref or commit, or a rebuild."""

from __future__ import annotations

from sqlalchemy.orm import Session

from pipeline import notify, source
from pipeline.config import Config
from pipeline.errors import InvalidRequest, NotFound
from pipeline.store import Build, Database, builds
from pipeline.types import is_commit

__all__ = ["cancel", "rebuild", "request_build"]


def _full_ref(ref: str, refs: dict[str, str]) -> str:
    for candidate in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}"):
        if candidate in refs:
            return candidate
    raise NotFound(f"no branch or tag {ref!r} in the repository")


def request_build(
    db: Database,
    config: Config,
    project_name: str,
    *,
    ref: str | None = None,
    commit: str | None = None,
    actor: str = "api",
) -> Build:
    """Queue a build of ``ref`` (resolved now with ls-remote) or of an exact ``commit``; the
    actor (the token's name) is recorded on the build."""
    project = config.project(project_name)
    if commit is not None and not is_commit(commit):
        raise InvalidRequest(f"commit must be a full 40-character lowercase SHA, got {commit[:60]!r}")
    if ref is None and commit is None:
        raise InvalidRequest("give a ref (branch or tag) or a commit")
    if ref is not None:
        refs = source.remote_refs(project)
        full = _full_ref(ref, refs)
        commit = commit or refs[full]
    else:
        full = f"refs/heads/{project.default_branch}"
    branch = full.removeprefix("refs/heads/") if full.startswith("refs/heads/") else None
    assert commit is not None  # given, or the ref's commit
    with db.session() as session:
        build = builds.create_build(
            session,
            project=project_name,
            commit=commit,
            ref=full,
            branch=branch,
            trigger="api",
            actor=actor,
        )
        notify.build_queued(session, config, build.id)
        return build


def rebuild(db: Database, config: Config, build_id: int, *, actor: str) -> Build:
    """Queue the same commit and ref again, as a new build that names the one it repeats."""
    with db.session() as session:
        old = builds.get_build(session, build_id)
        config.project(old.project)  # a project removed from the config cannot build
        build = builds.create_build(
            session,
            project=old.project,
            commit=old.commit,
            ref=old.ref,
            branch=old.branch,
            trigger="rebuild",
            actor=f"rebuild of {old.id} by {actor}",
        )
        notify.build_queued(session, config, build.id)
        return build


def cancel(session: Session, config: Config, build_id: int) -> Build:
    """Cancel a queued or running build, and say so on its commit (a running one's worker
    stops at its next heartbeat and writes nothing more)."""
    build = builds.cancel_build(session, build_id)
    notify.build_ended(session, config, build_id, failure=False)
    return build
