"""An environment's ``smoke_test`` and ``verify_after``: good ones load with their defaults, bad
ones fail at start naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.config import parse_config
from pipeline.errors import ConfigError


def config(smoke: dict[str, Any] | None = None, verify: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    env: dict[str, Any] = {"name": "dev", "registry": "local", "repository": "a/dev"}
    if smoke is not None:
        env["smoke_test"] = smoke
    if verify is not None:
        env["verify_after"] = verify
    return {
        "registries": {"local": {"url": "127.0.0.1:5000", "insecure": True}},
        "projects": {
            "app": {
                "repo": "https://git.example.com/a/app.git",
                "image": {"registry": "local", "repository": "a/app"},
                "environments": [env],
            }
        },
        **top,
    }


def test_the_issue_s_examples_load_with_their_durations() -> None:
    smoke = {
        "run": {"env": {"PORT": "8080"}, "command": ["serve"], "port": 8080},
        "probe": {"http": "/healthz", "expect_status": 200, "expect_body": "ok"},
        "timeout": "60s",
    }
    verify = {
        "http": "https://{environment}.example.com/version",
        "expect_body_contains": "{short_sha}",
        "interval": "10s",
        "timeout": "10m",
        "auto_rollback": True,
    }
    loaded = parse_config(config(smoke, verify))
    env = loaded.project("app").environment("dev")
    assert env.smoke_test is not None and env.smoke_test.timeout == 60.0 and env.smoke_test.probe.interval == 0.5
    assert env.verify_after is not None and env.verify_after.timeout == 600.0 and env.verify_after.auto_rollback
    assert loaded.smoke_builder(env.smoke_test).name == "default"  # the local engine when none is named
    assert parse_config(config({"probe": {"exec": ["true"]}, "timeout": "250ms"})).project("app").environment(
        "dev"
    ).smoke_test.timeout == pytest.approx(0.25)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (config({"probe": {"http": "/healthz"}}), "smoke_test: an http probe needs run.port"),
        (config({"probe": {}}), "give exactly one of http (a path to ask) or exec"),
        (config({"probe": {"http": "/x", "exec": ["true"]}, "run": {"port": 80}}), "give exactly one of http"),
        (config({"probe": {"exec": ["true"], "expect_body": "ok"}}), "expect_body applies to an http probe"),
        (config({"probe": {"http": "healthz"}, "run": {"port": 80}}), "smoke_test.probe.http: http is a"),
        (config({"probe": {"exec": ["true"]}, "timeout": "soon"}), "smoke_test.timeout: expected a dur"),
        (config({"probe": {"exec": ["true"]}, "timeout": 0}), "smoke_test.timeout: Input should be greater than 0"),
        (config({"probe": {"exec": ["true"]}, "run": {"port": 70000}}), "smoke_test.run.port: Input should be"),
        (config({"probe": {"exec": ["true"]}, "run": {"env": {"A-B": "1"}}}), "'A-B' is not a valid name"),
        (config({"probe": {"exec": ["true"]}, "retries": 3}), "smoke_test.retries: unknown key"),
        (
            config({"probe": {"exec": ["true"]}, "engine": "nope"}, builders=[{"name": "b", "buildkit": "tcp://h:1"}]),
            "smoke_test.engine: no docker builder named 'nope' (a smoke test runs containers; docker builders: none)",
        ),
        (
            config({"probe": {"exec": ["true"]}}, builders=[{"name": "b", "buildkit": "tcp://h:1"}]),
            "smoke_test.engine: a smoke test runs on a docker builder, and none is configured",
        ),
        (config(verify={"http": "ftp://x/version"}), "verify_after.http: http must be an http://"),
        (config(verify={"http": "https://{env}.x/v"}), "verify_after.http: http 'https://{env}.x/v' uses"),
        (config(verify={"http": "https://x/v", "expect_body_contains": "{tag}"}), "uses ['tag']"),
        (config(verify={"http": "https://x/v", "interval": "1m", "timeout": "30s"}), "interval (60 s) is longer"),
        (config(verify={"http": "https://x/v", "rollback": True}), "verify_after.rollback: unknown key"),
    ],
)
def test_bad_verification_config_names_the_key(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert expected in caught.value.message
    assert "projects.app.environments." in caught.value.message


def test_where_the_smoke_container_listens() -> None:
    """Host network on a bridgeless engine; else a port the engine picks, on loopback when local."""
    from pipeline.builder._container import _engine_host, publish_args
    from pipeline.builder._engine import Engine

    assert publish_args(8080, bridgeless=True, local=True) == []
    assert publish_args(8080, bridgeless=False, local=True) == [("127.0.0.1::8080",)]
    assert publish_args(8080, bridgeless=False, local=False) == [(8080,)]
    assert publish_args(None, bridgeless=False, local=True) == []
    assert _engine_host(Engine("docker", "buildkit", None)) == "127.0.0.1"
    assert _engine_host(Engine("docker", "buildkit", "unix:///run/docker.sock")) == "127.0.0.1"
    assert _engine_host(Engine("docker", "buildkit", "tcp://builder-2.internal:2376")) == "builder-2.internal"
    assert _engine_host(Engine("docker", "buildkit", "ssh://ci@10.0.0.7")) == "10.0.0.7"
