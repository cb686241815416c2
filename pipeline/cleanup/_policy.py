"""The cleanup plan, pure data in and out: which images a retention policy keeps and why.

Given the project's images (``ImageRow``), what Git says (``GitFacts``), what promotions keep,
the policy and the time, ``plan`` decides every image: kept with the first rule that keeps it,
or deleted with the reason no rule did. A digest several builds made is one image in the
registry, so it is deleted only when every build of it is; otherwise all its builds are kept.
The same plan is what ``--dry-run`` prints and what the executor works through, so the two
cannot disagree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

from pipeline.config import RetentionPolicy
from pipeline.store.retention import ImageRow

__all__ = ["Decision", "GitFacts", "Plan", "plan"]

Action = Literal["keep", "delete"]


@dataclass(frozen=True)
class GitFacts:
    """The project's repository now: each branch's newest commits (newest first), each tag's
    commit, and every commit reachable from a branch or a tag."""

    branches: Mapping[str, tuple[str, ...]]
    tags: Mapping[str, str]
    reachable: frozenset[str]

    @cached_property
    def _branch_of(self) -> dict[str, tuple[int, str]]:
        """Commit -> (its place among a branch's newest, 0 the head; that branch), nearest first."""
        found: dict[str, tuple[int, str]] = {}
        for branch, commits in sorted(self.branches.items()):
            for place, commit in enumerate(commits):
                if commit not in found or place < found[commit][0]:
                    found[commit] = (place, branch)
        return found

    @cached_property
    def _tag_of(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for tag, commit in sorted(self.tags.items()):
            found.setdefault(commit, tag)
        return found

    def recent_on(self, commit: str, newest: int) -> str | None:
        """A branch among whose ``newest`` commits ``commit`` is."""
        place = self._branch_of.get(commit)
        return place[1] if place is not None and place[0] < newest else None

    def tag_at(self, commit: str) -> str | None:
        return self._tag_of.get(commit)


@dataclass(frozen=True)
class Decision:
    build_id: int
    digest: str
    commit: str
    branch: str | None
    tags: tuple[str, ...]
    action: Action
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "build_id": self.build_id,
            "digest": self.digest,
            "commit": self.commit,
            "branch": self.branch,
            "tags": list(self.tags),
            "action": self.action,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Plan:
    project: str
    decisions: tuple[Decision, ...] = field(default=())

    @property
    def deletions(self) -> dict[str, list[Decision]]:
        """Digest -> the builds of it, for the digests to delete, oldest first."""
        out: dict[str, list[Decision]] = {}
        for d in self.decisions:
            if d.action == "delete":
                out.setdefault(d.digest, []).append(d)
        return out

    def counts(self) -> dict[str, int]:
        kept = sum(1 for d in self.decisions if d.action == "keep")
        return {"kept": kept, "deleted": len(self.decisions) - kept, "digests_deleted": len(self.deletions)}


def _keeps(
    image: ImageRow, git: GitFacts, promoted: Mapping[str, str], policy: RetentionPolicy, now: dt.datetime
) -> str | None:
    """The first rule that keeps the image, in words; None when none does."""
    if why := promoted.get(image.digest):
        return why
    tag = git.tag_at(image.commit) if policy.keep_git_tags else None
    if tag is not None:
        return f"Git tag {tag} points at {image.commit[:12]}"
    branch = git.recent_on(image.commit, policy.keep_commits)
    if branch is not None:
        return f"{image.commit[:12]} is one of the last {policy.keep_commits} commits of branch {branch}"
    age = now - image.built_at
    if age < dt.timedelta(days=policy.keep_days):
        return f"built {_ago(age)} ago, within the {policy.keep_days} days kept"
    return None


def _why_deleted(image: ImageRow, git: GitFacts, policy: RetentionPolicy) -> str:
    old = f"built more than {policy.keep_days} days ago"
    if image.branch and image.branch not in git.branches and image.commit not in git.reachable:
        return f"branch {image.branch} was deleted in Git and {image.commit[:12]} is on no branch or tag; {old}"
    if image.commit not in git.reachable:
        return f"{image.commit[:12]} is on no branch or tag (force-pushed away); {old}"
    return (
        f"{image.commit[:12]} is not among the last {policy.keep_commits} commits of any branch, "
        f"no Git tag points at it, no recent promotion ran it; {old}"
    )


def _ago(age: dt.timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"


def plan(
    project: str,
    images: list[ImageRow],
    git: GitFacts,
    promoted: Mapping[str, str],
    policy: RetentionPolicy,
    now: dt.datetime,
) -> Plan:
    """Decide every image; a digest is deleted only when no build of it is kept."""
    first: dict[int, Decision] = {}
    kept_digest: dict[str, int] = {}
    for image in images:
        why = _keeps(image, git, promoted, policy, now)
        action: Action = "keep" if why is not None else "delete"
        reason = why if why is not None else _why_deleted(image, git, policy)
        first[image.build_id] = Decision(
            image.build_id, image.digest, image.commit, image.branch, image.tags, action, reason
        )
        if why is not None:
            kept_digest.setdefault(image.digest, image.build_id)
    decisions = []
    for d in first.values():
        keeper = kept_digest.get(d.digest)
        if d.action == "delete" and keeper is not None:
            d = replace(
                d, action="keep", reason=f"same digest as build {keeper}, which is kept: {first[keeper].reason}"
            )
        decisions.append(d)
    return Plan(project, tuple(decisions))
