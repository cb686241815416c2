"""The config file: good files load, bad ones fail at start naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import load_config, parse_config
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = {
    "registries": {"local": {"url": "127.0.0.1:5000", "insecure": True}},
    "projects": {
        "app": {"repo": "https://git.example.com/a/app.git", "image": {"registry": "local", "repository": "a/app"}}
    },
}


def _with(path: list[str], value: object) -> dict:
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def test_example_config_loads_as_is() -> None:
    config = load_config(ROOT / "config" / "pipeline.yaml")
    assert config.effective_database_url.startswith("sqlite:///")
    assert config.data_dir.is_absolute()
    project = config.projects["hello"]
    assert project.image.registry in config.registries
    assert [e.name for e in project.environments] == ["dev", "staging", "prod"]


def test_defaults_and_database_override(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config(MINIMAL)
    assert config.projects["app"].branches == ["main"]
    assert config.projects["app"].tags == ["{branch}-{short_sha}"]
    monkeypatch.setenv("PIPELINE_DATABASE_URL", "postgresql+psycopg://u@db/p")
    assert parse_config(MINIMAL).effective_database_url == "postgresql+psycopg://u@db/p"


def test_pipeline_config_env_picks_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = tmp_path / "chosen.yaml"
    chosen.write_text(yaml.safe_dump({**MINIMAL, "data_dir": "d"}))
    monkeypatch.setenv("PIPELINE_CONFIG", str(chosen))
    config = load_config(tmp_path / "ignored.yaml")
    assert config.data_dir == tmp_path / "d"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_with(["projects", "app", "biuld"], {}), "projects.app.biuld: unknown key"),
        (_with(["projects", "app", "build"], {"dockerfle": "x"}), "projects.app.build.dockerfle: unknown key"),
        (_with(["projects", "app", "build"], {"dockerfile": "../x/Dockerfile"}), "projects.app.build.dockerfile:"),
        (_with(["projects", "app", "build"], {"context": "/etc"}), "projects.app.build.context:"),
        (_with(["projects", "app", "tags"], ["{brnch}"]), "uses ['brnch']"),
        (_with(["projects", "app", "tags"], []), "projects.app.tags:"),
        (_with(["projects", "app", "image", "registry"], "nope"), "no registry named 'nope'"),
        (_with(["projects", "app", "image", "repository"], "Bad Repo"), "projects.app.image.repository:"),
        (_with(["projects", "Bad Name"], MINIMAL["projects"]["app"]), "projects.Bad Name"),
        (_with(["worker"], {"lease_seconds": "soon"}), "worker.lease_seconds:"),
        (_with(["registries", "local", "url"], "http://"), "registries.local.url:"),
        (_with(["databse_url"], "x"), "databse_url: unknown key"),
    ],
)
def test_bad_config_names_the_key(data: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "pipeline.yaml")
    assert expected in info.value.message
    assert info.value.message.startswith("pipeline.yaml: invalid configuration")


def test_unreadable_and_non_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("projects: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listy)


def test_no_config_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIPELINE_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="--config FILE or set PIPELINE_CONFIG"):
        load_config(None)


def test_secret_looking_build_args_are_refused_with_advice() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_with(["projects", "app", "build"], {"args": {"NPM_TOKEN": "x"}}))
    assert "projects.app.build.args: build arg NPM_TOKEN looks like a secret" in info.value.message
    assert "build.secrets: [{id: npm_token, env: NPM_TOKEN}]" in info.value.message


def test_branch_overrides_merge_into_the_project_build() -> None:
    data = _with(["projects", "app", "build"], {"target": "prod", "args": {"A": "1", "B": "2"}})
    data["projects"]["app"]["branch_overrides"] = {"feature/*": {"target": "dev", "args": {"B": "x"}, "no_cache": True}}
    project = parse_config(data).projects["app"]
    feature = project.build_for("feature/login")
    assert (feature.target, feature.args, feature.no_cache) == ("dev", {"A": "1", "B": "x"}, True)
    assert project.build_for("main").target == "prod" and project.build_for(None).args == {"A": "1", "B": "2"}


def test_poll_intervals() -> None:
    assert parse_config(_with(["projects", "app", "poll"], "5m")).projects["app"].poll == 300
    assert parse_config(_with(["projects", "app", "poll"], 90)).projects["app"].poll == 90
    for bad in ("soon", "5", 3):
        with pytest.raises(ConfigError, match="projects.app.poll"):
            parse_config(_with(["projects", "app", "poll"], bad))
