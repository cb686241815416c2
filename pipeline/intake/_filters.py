"""Whether a verified push should build: refs, deletions, skip markers, changed paths."""

from __future__ import annotations

import fnmatch
import re

from pipeline.config import ProjectConfig
from pipeline.intake._event import ZERO_SHA, PushEvent

__all__ = ["needs_path_check", "skip_reason"]

_SKIP = re.compile(r"\[(skip ci|ci skip|no ci|skip pipeline)\]", re.IGNORECASE)


def _ref_reason(project: ProjectConfig, push: PushEvent) -> str | None:
    if push.branch is not None:
        if not any(fnmatch.fnmatchcase(push.branch, glob) for glob in project.branches):
            return f"branch {push.branch!r} does not match the project's branches {project.branches}"
        return None
    if push.tag is not None:
        if not any(fnmatch.fnmatchcase(push.tag, glob) for glob in project.git_tags):
            return f"tag {push.tag!r} does not match the project's git_tags {project.git_tags}"
        return None
    return f"{push.ref} is neither a branch nor a tag"


def skip_reason(project: ProjectConfig, push: PushEvent) -> str | None:
    """Why this push does not build, or None when it should."""
    if push.deleted:
        return f"{push.ref} was deleted; nothing to build"
    if reason := _ref_reason(project, push):
        return reason
    if marker := _SKIP.search(push.head_message):
        return f"the head commit message says {marker[0]}"
    if project.paths.active and push.changed_paths is not None and not project.paths.matches(push.changed_paths):
        return f"no changed file matches the project's paths filter ({len(push.changed_paths)} changed)"
    return None


def needs_path_check(project: ProjectConfig, push: PushEvent) -> bool:
    """The host did not list the changed files: the source step must diff before..after."""
    return project.paths.active and push.changed_paths is None and push.before != ZERO_SHA
