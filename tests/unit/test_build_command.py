"""The docker command line each builder mode gets.

Only the buildx mode is checked here without running it: no buildx exists on these machines
(REAL-SERVICES.md); the built-in BuildKit mode runs for real in tests/integration.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.builder import BuildSpec, Engine
from pipeline.builder import _build_command as build_command  # noqa: PLC2701 (the argv, made in one place)
from pipeline.errors import BuildError, RegistryError


def _spec(tmp_path: Path, **kw: object) -> BuildSpec:
    return BuildSpec(context_dir=tmp_path, dockerfile=tmp_path / "Dockerfile", refs=["reg:5000/a/b:main"],
                     args={"A": "1"}, labels={"l": "v"}, **kw)  # type: ignore[arg-type]


def test_builtin_buildkit_command(tmp_path: Path) -> None:
    engine = Engine("/usr/bin/docker", "buildkit", "unix:///e.sock")
    cmd = build_command(engine, _spec(tmp_path, target="t", no_cache=True, cache_from=["reg:5000/a/b@sha256:1"]),
                        tmp_path / "iid", {"npm": tmp_path / "s"}, "/cfg")
    assert cmd[:3] == ["/usr/bin/env", "DOCKER_BUILDKIT=1", "/usr/bin/docker"]
    assert cmd[cmd.index("--host") + 1] == "unix:///e.sock" and "build" in cmd and "buildx" not in cmd
    assert cmd[-2:] == ["--", str(tmp_path)], "the context comes after --"
    for flag, value in [("--target", "t"), ("--build-arg", "A=1"), ("--label", "l=v"),
                        ("--cache-from", "reg:5000/a/b@sha256:1"), ("--secret", f"id=npm,src={tmp_path / 's'}"),
                        ("--tag", "reg:5000/a/b:main"), ("--build-arg", "BUILDKIT_INLINE_CACHE=1")]:
        assert any(a == flag and b == value for a, b in zip(cmd, cmd[1:])), (flag, value)
    assert "--no-cache" in cmd


def test_buildx_command_exports_registry_cache(tmp_path: Path) -> None:
    cmd = build_command(Engine("docker", "buildx", None), _spec(tmp_path), tmp_path / "iid", {}, "/cfg")
    assert cmd[cmd.index("buildx"):cmd.index("buildx") + 3] == ["buildx", "build", "--load"]
    assert "type=registry,ref=reg:5000/a/b:buildcache,mode=max" in cmd
    assert "type=registry,ref=reg:5000/a/b:buildcache" in cmd


def test_buildx_pushes_multi_platform_images_with_provenance(tmp_path: Path) -> None:
    spec = _spec(tmp_path, platforms=["linux/amd64", "linux/arm64"], provenance=True)
    cmd = build_command(Engine("docker", "buildx", None), spec, tmp_path / "iid", {}, "/cfg")
    assert "--push" in cmd and "--load" not in cmd
    assert cmd[cmd.index("--platform") + 1] == "linux/amd64,linux/arm64"
    assert "--provenance=mode=max" in cmd and cmd[cmd.index("--metadata-file") + 1] == str(tmp_path / "metadata.json")


def test_platforms_on_builtin_buildkit_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="platforms and provenance need docker buildx; engine default"):
        build_command(Engine("/usr/bin/docker", "buildkit", None), _spec(tmp_path, platforms=["linux/arm64"]),
                      tmp_path / "iid", {}, "/cfg")


def test_digest_from_buildx_metadata(tmp_path: Path) -> None:
    from pipeline.builder import _pushed_by_buildx  # noqa: PLC2701
    meta = tmp_path / "metadata.json"
    meta.write_text('{"containerimage.digest": "sha256:' + "a" * 64 + '", "containerimage.config.digest": "sha256:c"}')
    built = _pushed_by_buildx(meta, _spec(tmp_path), 5, 2)
    assert (built.digest, built.image_id, built.loaded, built.steps_cached) == ("sha256:" + "a" * 64, "sha256:c", False, 2)
    meta.write_text("{}")
    with pytest.raises(RegistryError, match="wrote no image digest"):
        _pushed_by_buildx(meta, _spec(tmp_path), 5, 2)
