"""The docker command line each builder mode gets.

Only the buildx mode is checked here without running it: no buildx exists on these machines
(REAL-SERVICES.md); the built-in BuildKit mode runs for real in tests/integration.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.builder import BuildSpec, Engine
from pipeline.builder import _build_command as build_command  # noqa: PLC2701 (the argv, made in one place)


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
