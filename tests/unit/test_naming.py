"""Repository matching and tag templates: pure functions with many spellings."""

from __future__ import annotations

import pytest

from pipeline.builder import render_tags, sanitize_tag
from pipeline.config import ProjectConfig
from pipeline.intake._matching import match_project, normalize_repo


@pytest.mark.parametrize(
    "spelling",
    [
        "https://github.com/Acme/App.git",
        "https://github.com/acme/app",
        "https://github.com/acme/app/",
        "HTTPS://GitHub.com/acme/app.git",
        "https://token:x-oauth@github.com/acme/app.git",
        "git@github.com:acme/app.git",
        "ssh://git@github.com/acme/app.git",
        "git://github.com/acme/app.git",
    ],
)
def test_repo_spellings_normalize_alike(spelling: str) -> None:
    assert normalize_repo(spelling) == ("github.com", "acme/app")


def _projects(**repos: str) -> dict[str, ProjectConfig]:
    image = {"registry": "r", "repository": "x/y"}
    return {name: ProjectConfig(repo=repo, image=image) for name, repo in repos.items()}


def test_match_by_url_then_unambiguous_path() -> None:
    projects = _projects(app="git@github.com:acme/app.git", other="https://gitlab.com/acme/other.git")
    assert match_project(projects, ["https://github.com/acme/app"], None) == "app"
    assert match_project(projects, [], "acme/other") == "other"
    assert match_project(projects, ["https://github.com/acme/nope"], "acme/nope") is None


def test_path_only_match_refuses_ambiguity() -> None:
    projects = _projects(a="https://github.com/acme/app.git", b="https://gitlab.com/acme/app.git")
    assert match_project(projects, [], "acme/app") is None
    assert match_project(projects, ["https://gitlab.com/acme/app"], "acme/app") == "b"


def test_tags_render_and_sanitize() -> None:
    values = {"branch": "feature/Login Page", "sha": "a" * 40, "short_sha": "aaaaaaa", "build_id": "7"}
    assert render_tags(["{branch}-{short_sha}", "{sha}", "b{build_id}", "{sha}"], values, default_branch=False) == [
        "feature-Login-Page-aaaaaaa",
        "a" * 40,
        "b7",
    ]
    assert sanitize_tag("..weird//name") == "weird-name"
    assert len(sanitize_tag("x" * 300)) == 128


def _values(**kw: object) -> dict:
    import datetime as dt

    from pipeline.builder import template_values

    base = {
        "project": "p",
        "branch": None,
        "tag": None,
        "sha": "c" * 40,
        "build_id": 9,
        "now": dt.datetime(2026, 11, 28, 1, 2, 3, tzinfo=dt.UTC),
    }
    return template_values(**{**base, **kw})


def test_semver_tags_only_for_semantic_version_tags() -> None:
    templates = ["{semver}", "{semver_minor}", "{semver_major}", "{branch}", "latest"]
    assert render_tags(templates, _values(tag="v2.3.4"), default_branch=False) == ["2.3.4", "2.3", "2"]
    assert render_tags(templates, _values(tag="v2.3.4-rc.1"), default_branch=False) == ["2.3.4-rc.1"]
    assert render_tags(templates, _values(tag="nightly"), default_branch=False) == ["c" * 40]
    assert render_tags(templates, _values(branch="main"), default_branch=True) == ["main", "latest"]
    assert render_tags(["{timestamp}-{build_id}"], _values(branch="x"), default_branch=False) == ["20261128010203-9"]


def test_args_fill_placeholders_and_blank_what_does_not_apply() -> None:
    from pipeline.builder import render_args

    assert render_args({"V": "{version}", "T": "{tag}", "S": "{short_sha}"}, _values(branch="main")) == {
        "V": "ccccccc",
        "T": "",
        "S": "ccccccc",
    }
