"""The docker command line each kind of builder gets (the builds themselves run for real in
tests/integration on Debian's 20.10 engine and on a buildkitd v0.32 daemon)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from pipeline.builder import BuildSpec, Engine, _pushed_by_buildx
from pipeline.builder import _build_command as build_command  # the argv, made in one place
from pipeline.config import parse_config
from pipeline.errors import BuildError, ConfigError, RegistryError

BUILDKIT = Engine("docker", "buildx", None, name="farm", kind="buildkit", driver="remote", builder="pipeline-farm-1")
DOCKER_DRIVER = Engine("docker", "buildx", "tcp://ce:2376", kind="docker", driver="docker")


def _spec(tmp_path: Path, **kw: object) -> BuildSpec:
    return BuildSpec(
        context_dir=tmp_path,
        dockerfile=tmp_path / "Dockerfile",
        refs=["reg:5000/a/b:main"],
        args={"A": "1"},
        labels={"l": "v"},
        **kw,
    )  # type: ignore[arg-type]


def _pairs(cmd: list[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(cmd))


def test_builtin_buildkit_command(tmp_path: Path) -> None:
    engine = Engine("/usr/bin/docker", "buildkit", "unix:///e.sock")
    cmd = build_command(
        engine,
        _spec(tmp_path, target="t", no_cache=True, cache_from=["reg:5000/a/b@sha256:1"]),
        tmp_path / "iid",
        {"npm": tmp_path / "s"},
    )
    assert cmd[:3] == ["/usr/bin/docker", "--host", "unix:///e.sock"] and cmd[3] == "build" and "buildx" not in cmd
    assert engine.env()["DOCKER_BUILDKIT"] == "1"
    assert cmd[-2:] == ["--", str(tmp_path)], "the context comes after --"
    for pair in [
        ("--target", "t"),
        ("--build-arg", "A=1"),
        ("--label", "l=v"),
        ("--cache-from", "reg:5000/a/b@sha256:1"),
        ("--secret", f"id=npm,src={tmp_path / 's'}"),
        ("--tag", "reg:5000/a/b:main"),
        ("--build-arg", "BUILDKIT_INLINE_CACHE=1"),
    ]:
        assert pair in _pairs(cmd), pair
    assert "--no-cache" in cmd


def test_docker_driver_never_asks_for_a_cache_export(tmp_path: Path) -> None:
    """buildx's docker driver refuses `--cache-to` without the containerd image store: a stock
    Docker CE engine would fail every build that asked for it."""
    cmd = build_command(DOCKER_DRIVER, _spec(tmp_path, cache_from=["reg:5000/a/b@sha256:1"]), tmp_path / "iid", {})
    assert cmd[3:6] == ["buildx", "build", "--load"]
    assert "--cache-to" not in cmd and "--push" not in cmd
    assert ("--cache-from", "reg:5000/a/b@sha256:1") in _pairs(cmd)
    assert ("--build-arg", "BUILDKIT_INLINE_CACHE=1") in _pairs(cmd)


def test_buildkit_daemon_pushes_itself_with_a_registry_cache(tmp_path: Path) -> None:
    cmd = build_command(BUILDKIT, _spec(tmp_path), tmp_path / "iid", {})
    assert cmd[:5] == ["docker", "buildx", "--builder", "pipeline-farm-1", "build"]
    assert "--push" in cmd and "--load" not in cmd and "--provenance=false" in cmd
    assert cmd[cmd.index("--metadata-file") + 1] == str(tmp_path / "metadata.json")
    pairs = _pairs(cmd)
    assert ("--cache-from", "type=registry,ref=reg:5000/a/b:buildcache") in pairs
    assert (
        "--cache-to",
        "type=registry,ref=reg:5000/a/b:buildcache,mode=max,compression=zstd,ignore-error=true",
    ) in pairs
    custom = build_command(BUILDKIT, _spec(tmp_path, cache_ref="cache:5000/c:x", no_cache=True), tmp_path / "iid", {})
    assert ("--cache-to", "type=registry,ref=cache:5000/c:x,mode=max,compression=zstd,ignore-error=true") in _pairs(
        custom
    )
    assert not any(v.startswith("type=registry") for f, v in _pairs(custom) if f == "--cache-from"), (
        "no_cache builds read no cache"
    )


def test_multi_platform_with_provenance(tmp_path: Path) -> None:
    spec = _spec(tmp_path, platforms=["linux/amd64", "linux/arm64"], provenance=True)
    cmd = build_command(BUILDKIT, spec, tmp_path / "iid", {})
    assert cmd[cmd.index("--platform") + 1] == "linux/amd64,linux/arm64"
    assert "--provenance=mode=max" in cmd and "--provenance=false" not in cmd


@pytest.mark.parametrize("engine", [Engine("/usr/bin/docker", "buildkit", None), DOCKER_DRIVER])
def test_platforms_on_an_engine_are_a_clear_error(tmp_path: Path, engine: Engine) -> None:
    with pytest.raises(BuildError, match=f"builder {engine.name} .* cannot build multi-platform images or provenance"):
        build_command(engine, _spec(tmp_path, platforms=["linux/arm64"]), tmp_path / "iid", {})


def test_digest_from_buildx_metadata(tmp_path: Path) -> None:
    meta = tmp_path / "metadata.json"
    meta.write_text(
        '{"containerimage.digest": "sha256:' + "a" * 64 + '", "containerimage.config.digest": "sha256:c",'
        ' "containerimage.descriptor": {"size": 476}, "buildx.build.provenance": {"buildType": "x"}}'
    )
    built = _pushed_by_buildx(meta, _spec(tmp_path, provenance=True), 5, 2)
    assert (built.digest, built.image_id, built.loaded, built.steps_cached, built.size) == (
        "sha256:" + "a" * 64,
        "sha256:c",
        False,
        2,
        476,
    )
    assert built.buildkit_provenance == {"buildType": "x"}
    meta.write_text("{}")
    with pytest.raises(RegistryError, match="wrote no image digest"):
        _pushed_by_buildx(meta, _spec(tmp_path), 5, 2)


@pytest.mark.parametrize(
    ("builders", "message"),
    [
        ([{"name": "a"}], "give exactly one of 'docker', 'buildkit' or 'buildx'"),
        ([{"name": "a", "docker": "default", "buildx": "x"}], "give exactly one of"),
        ([{"name": "a", "docker": "default", "ca_file": "/etc/hostname"}], "apply to a 'buildkit' daemon only"),
        (
            [{"name": "a", "buildkit": "tcp://h:1", "cert_file": "/etc/hostname"}],
            "give cert_file and key_file together",
        ),
        ([{"name": "a", "buildkit": "tcp://h:1", "ca_file": "/nonexistent/ca.pem"}], "is not a readable file"),
        ([{"name": "a", "buildkit": "http://h:1"}], "builders.0.buildkit"),
        ([{"name": "a", "buildx": "x"}, {"name": "a", "buildx": "y"}], "builder 'a' is defined twice"),
        ([{"name": "a", "buildx": "x", "platforms": ["arm64"]}], "builders.0.platforms.0"),
    ],
)
def test_bad_builders_stop_the_config_with_the_key(builders: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"builders": builders})


def test_docker_hosts_is_an_alias_for_docker_builders() -> None:
    pool = parse_config({"docker": {"hosts": ["tcp://a:2376", "ssh://b"]}}).builder_pool
    assert [(b.name, b.kind, b.endpoint) for b in pool] == [
        ("tcp://a:2376", "docker", "tcp://a:2376"),
        ("ssh://b", "docker", "ssh://b"),
    ]
    assert [(b.name, b.endpoint) for b in parse_config({}).builder_pool] == [("default", "default")]
    with pytest.raises(ConfigError, match="give either builders or docker.hosts"):
        parse_config({"docker": {"hosts": ["tcp://a:2376"]}, "builders": [{"name": "x", "buildx": "x"}]})
