"""The cleanup plan as pure data: each rule keeps what it should, the first that keeps says why,
and a digest made by several builds is deleted only when none of them is kept."""

from __future__ import annotations

import datetime as dt

from pipeline.cleanup import GitFacts, plan
from pipeline.config import RetentionPolicy
from pipeline.store.retention import ImageRow

NOW = dt.datetime(2026, 12, 3, 12, tzinfo=dt.UTC)


def image(build_id: int, commit: str, branch: str | None, digest: str, days: float) -> ImageRow:
    return ImageRow(build_id, commit * 40, branch, f"refs/heads/{branch}", digest, (), NOW - dt.timedelta(days=days))


GIT = GitFacts(
    branches={"main": ("c" * 40, "b" * 40)},
    tags={"v1": "a" * 40},
    reachable=frozenset({"a" * 40, "b" * 40, "c" * 40, "d" * 40}),
)


def decide(images: list[ImageRow], policy: RetentionPolicy, promoted: dict[str, str] | None = None) -> dict[int, str]:
    return {
        d.build_id: f"{d.action}: {d.reason}" for d in plan("demo", images, GIT, promoted or {}, policy, NOW).decisions
    }


def test_each_rule_keeps_and_the_rest_is_deleted_with_its_reason() -> None:
    images = [
        image(1, "a", "main", "sha256:1", 30),  # tagged v1
        image(2, "b", "main", "sha256:2", 30),  # among main's newest
        image(3, "d", "main", "sha256:3", 30),  # reachable, old
        image(4, "e", "gone", "sha256:4", 30),  # branch deleted, unreachable
        image(5, "f", "gone", "sha256:5", 2),  # recent
        image(6, "e", "gone", "sha256:6", 30),  # promoted
    ]
    got = decide(images, RetentionPolicy(keep_commits=2), {"sha256:6": "runs in prod (promotion 9)"})
    assert got[1] == f"keep: Git tag v1 points at {'a' * 12}"
    assert got[2] == f"keep: {'b' * 12} is one of the last 2 commits of branch main"
    assert got[3].startswith(f"delete: {'d' * 12} is not among the last 2 commits of any branch")
    assert got[4].startswith(f"delete: branch gone was deleted in Git and {'e' * 12} is on no branch or tag")
    assert got[5] == "keep: built 2 days ago, within the 7 days kept"
    assert got[6] == "keep: runs in prod (promotion 9)"


def test_rules_can_be_turned_down() -> None:
    images = [image(1, "a", "main", "sha256:1", 30), image(2, "b", "main", "sha256:2", 1)]
    got = decide(images, RetentionPolicy(keep_commits=0, keep_git_tags=False, keep_days=0))
    assert [v.split(":")[0] for v in got.values()] == ["delete", "delete"]


def test_a_shared_digest_is_kept_for_every_build_when_one_keeps_it() -> None:
    images = [image(1, "d", "main", "sha256:same", 30), image(2, "b", "main", "sha256:same", 30)]
    got = decide(images, RetentionPolicy(keep_commits=2))
    assert (
        got[1] == f"keep: same digest as build 2, which is kept: {'b' * 12} is one of the last 2 commits of branch main"
    )
    assert plan("demo", images, GIT, {}, RetentionPolicy(keep_commits=2), NOW).deletions == {}
