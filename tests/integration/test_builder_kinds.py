"""Builder kinds against real ones: buildkitd v0.32 over mutual TLS through buildx's remote
driver, buildx's docker driver on Debian's 20.10 engine, and the faults users meet: a builder
that is down, a wrong or missing client certificate, an unknown buildx builder, a platform the
builder lacks, a cache registry that refuses writes, a daemon that dies mid-build."""

from __future__ import annotations

import gzip
import io
import json
import re
import subprocess
import tarfile
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.builder import BuilderPool, BuildSpec, Built
from pipeline.config import BuilderConfig
from pipeline.errors import BuildError, EngineError
from tests.buildkit_service import BuildkitDaemon, CertificateAuthority
from tests.integration.conftest import buildkit_entry, start_buildkitd
from tests.services import DockerEngine, Registry

INDEX_TYPES = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def uses_buildx(monkeypatch: pytest.MonkeyPatch, buildx_config: Path) -> Path:
    monkeypatch.setenv("DOCKER_CONFIG", str(buildx_config))
    return buildx_config


def _pool(tmp_path: Path, *entries: dict[str, Any]) -> BuilderPool:
    return BuilderPool([BuilderConfig.model_validate(e) for e in entries], None, tmp_path / "buildx")


def _context(tmp_path: Path, dockerfile: str, **files: str) -> Path:
    context = tmp_path / "ctx"
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (context / name).write_text(text)
    return context


def _spec(context: Path, ref: str, **kw: Any) -> BuildSpec:
    return BuildSpec(context_dir=context, dockerfile=context / "Dockerfile", refs=[ref], **kw)


def _build(pool: BuilderPool, spec: BuildSpec, tmp_path: Path, **kw: Any) -> tuple[Built, list[str]]:
    lines: list[str] = []
    return pool.build(spec, lines.append, tmp_path / "scratch", **kw), lines


def _manifest(registry: Registry, repository: str, reference: str) -> dict[str, Any]:
    answer = httpx.get(f"{registry.url}/v2/{repository}/manifests/{reference}", headers={"Accept": INDEX_TYPES})
    answer.raise_for_status()
    return answer.json()  # type: ignore[no-any-return]


def _file_in_image(registry: Registry, repository: str, manifest: dict[str, Any], path: str) -> str:
    for layer in manifest["layers"]:
        blob = httpx.get(f"{registry.url}/v2/{repository}/blobs/{layer['digest']}", follow_redirects=True).content
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
            if path in tar.getnames():
                return tar.extractfile(path).read().decode()  # type: ignore[union-attr]
    raise AssertionError(f"{path} is in no layer")


def test_each_builder_reports_kind_version_and_platforms(
    tmp_path: Path, uses_buildx: Path, engine: DockerEngine, buildkitd: BuildkitDaemon
) -> None:
    pool = _pool(
        tmp_path,
        {"name": "engine", "docker": engine.host},
        buildkit_entry("farm", buildkitd),
        buildkit_entry("declared", buildkitd, platforms=["linux/amd64", "linux/arm64"]),
    )
    on_engine, on_daemon, declared = pool.statuses(fresh=True)
    assert on_engine.healthy and on_engine.kind == "docker" and on_engine.version.startswith("Docker Engine 20.10")
    assert on_engine.driver == "docker" and on_engine.platforms == ("linux/amd64",), "buildx's docker driver"
    assert on_daemon.healthy and on_daemon.kind == "buildkit" and on_daemon.driver == "remote", on_daemon.detail
    assert on_daemon.version.startswith("BuildKit v") and "linux/amd64" in on_daemon.platforms
    assert declared.platforms == ("linux/amd64", "linux/arm64"), "declared platforms win over what it reports"


def test_docker_driver_builds_without_a_cache_export_and_pushes(
    tmp_path: Path, uses_buildx: Path, engine: DockerEngine, registry: Registry, base_image: str
) -> None:
    """The issue's example: `--cache-to` with buildx's docker driver fails every build on a stock engine."""
    context = _context(tmp_path, f"FROM {base_image}\nRUN echo docker-driver > /d\n")
    pool = _pool(tmp_path, {"name": "ce", "docker": engine.host})
    built, lines = _build(pool, _spec(context, f"{registry.host}/kinds/docker-driver:1", network="host"), tmp_path)
    assert built.engine is not None and built.engine.driver == "docker" and built.loaded
    assert built.cache_exported is None and not any("--cache-to" in line for line in lines)
    assert _manifest(registry, "kinds/docker-driver", "1") and built.digest.startswith("sha256:")
    assert (
        built.digest
        == httpx.head(
            f"{registry.url}/v2/kinds/docker-driver/manifests/1",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        ).headers["docker-content-digest"]
    )


def test_wrong_or_missing_client_certificate_is_a_clear_error_naming_the_builder(
    tmp_path: Path, uses_buildx: Path, buildkitd: BuildkitDaemon
) -> None:
    assert buildkitd.server is not None
    intruder = CertificateAuthority(tmp_path / "other-ca").issue("intruder", server=False)
    rogue = {
        "name": "rogue",
        "buildkit": buildkitd.address,
        "ca_file": str(buildkitd.server.ca_file),
        "cert_file": str(intruder.cert_file),
        "key_file": str(intruder.key_file),
    }
    missing = {"name": "no-cert", "buildkit": buildkitd.address, "ca_file": str(buildkitd.server.ca_file)}
    plain = {"name": "no-tls", "buildkit": buildkitd.address}
    spec = _spec(_context(tmp_path, "FROM scratch\n"), "127.0.0.1:1/never/pushed:1")
    for entry, words in (
        (rogue, "refused our client certificate"),
        (missing, "asks for a client certificate"),
        (plain, "speaks TLS: set ca_file, cert_file and key_file"),
    ):
        with pytest.raises(BuildError, match=f"builder {entry['name']}: .*{words}"):
            _pool(tmp_path, entry).build(spec, lambda line: None, tmp_path / "scratch")


def test_a_buildx_builder_made_outside_the_service_is_used_by_name(
    tmp_path: Path, uses_buildx: Path, monkeypatch: pytest.MonkeyPatch, buildkitd: BuildkitDaemon, registry: Registry
) -> None:
    """`docker buildx create` by hand, in the user's own buildx directory; the config names it."""
    assert buildkitd.client is not None
    monkeypatch.setenv("BUILDX_CONFIG", str(tmp_path / "users-buildx"))
    options = f"cacert={buildkitd.client.ca_file},cert={buildkitd.client.cert_file},key={buildkitd.client.key_file}"
    subprocess.run(
        [
            "/usr/bin/docker",
            "buildx",
            "create",
            "--name",
            "made-by-hand",
            "--driver",
            "remote",
            "--driver-opt",
            options,
            buildkitd.address,
        ],
        check=True,
        capture_output=True,
    )
    context = _context(tmp_path, "FROM scratch\nCOPY a.txt /a.txt\n", **{"a.txt": "by hand\n"})
    pool = _pool(tmp_path, {"name": "hand", "buildx": "made-by-hand"})
    [status] = pool.statuses(fresh=True)
    assert status.healthy and status.kind == "buildx" and status.driver == "remote", status.detail
    built, _ = _build(pool, _spec(context, f"{registry.host}/kinds/by-hand:1"), tmp_path)
    assert built.engine is not None and built.engine.builder == "made-by-hand" and not built.loaded
    assert _manifest(registry, "kinds/by-hand", "1")["layers"]
    assert not (tmp_path / "buildx" / "instances" / "made-by-hand").exists(), "the service defined nothing"


def test_unknown_buildx_builder_and_missing_platform_are_clear_errors(
    tmp_path: Path, uses_buildx: Path, buildkitd: BuildkitDaemon
) -> None:
    # no Linux worker offers windows/amd64, emulated or not
    spec = _spec(_context(tmp_path, "FROM scratch\n"), "127.0.0.1:1/never/pushed:1", platforms=["windows/amd64"])
    with pytest.raises(BuildError, match='builder ci: no buildx builder by that name: no builder "nosuch"'):
        _pool(tmp_path, {"name": "ci", "buildx": "nosuch"}).pick(spec)
    with pytest.raises(BuildError, match="builder farm: lacks platform windows/amd64"):
        _pool(tmp_path, buildkit_entry("farm", buildkitd)).pick(spec)


def test_a_builder_at_max_parallel_is_skipped_for_the_next_one(
    tmp_path: Path, uses_buildx: Path, buildkitd: BuildkitDaemon, registry: Registry, base_image: str
) -> None:
    slow = _context(tmp_path, f"FROM {base_image}\nRUN echo {tmp_path.name} && sleep 4\n")
    quick = tmp_path / "quick"
    quick.mkdir()
    (quick / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /d\n")
    pool = _pool(
        tmp_path, buildkit_entry("one", buildkitd, max_parallel=1), buildkit_entry("two", buildkitd, max_parallel=1)
    )
    started = threading.Event()
    first: list[Built] = []
    runner = threading.Thread(
        target=lambda: first.append(
            pool.build(
                _spec(slow, f"{registry.host}/kinds/parallel:slow", network="host"),
                lambda line: None,
                tmp_path / "scratch-1",
                on_start=lambda engine: started.set(),
            )
        )
    )
    runner.start()
    try:
        assert started.wait(60)
        second, lines = _build(pool, _spec(quick, f"{registry.host}/kinds/parallel:quick"), tmp_path)
    finally:
        runner.join(120)
    assert first and first[0].engine is not None and first[0].engine.name == "one"
    assert second.engine is not None and second.engine.name == "two"
    assert "builder one skipped: busy: 1 builds running (max_parallel 1)" in lines


def test_a_builder_that_is_down_is_skipped_and_why_is_logged(
    tmp_path: Path, uses_buildx: Path, buildkitd: BuildkitDaemon, registry: Registry
) -> None:
    down = {"name": "gone", "buildkit": "tcp://127.0.0.1:1"}
    pool = _pool(tmp_path, down, buildkit_entry("farm", buildkitd))
    context = _context(tmp_path, "FROM scratch\nCOPY a.txt /a.txt\n", **{"a.txt": "a\n"})
    built, lines = _build(pool, _spec(context, f"{registry.host}/kinds/rotation:1"), tmp_path)
    assert built.engine is not None and built.engine.name == "farm" and not built.loaded
    assert "builder gone skipped: the BuildKit daemon does not answer at 127.0.0.1:1: Connection refused" in lines
    assert built.skipped == (
        "builder gone skipped: the BuildKit daemon does not answer at 127.0.0.1:1: Connection refused",
    )
    assert _manifest(registry, "kinds/rotation", built.digest)["layers"]
    with pytest.raises(EngineError, match="no builder can take this build: builder gone: the BuildKit daemon does not"):
        _pool(tmp_path, down).pick(_spec(context, "x/y:1"))  # may come back: the worker retries


def test_multi_platform_index_without_emulation(
    tmp_path: Path, uses_buildx: Path, buildkitd: BuildkitDaemon, registry: Registry, base_image: str
) -> None:
    dockerfile = (
        f"FROM --platform=$BUILDPLATFORM {base_image} AS build\nARG TARGETARCH\n"
        'RUN echo "built for $TARGETARCH" > /arch\n'
        "FROM scratch\nCOPY --from=build /arch /arch\nCOPY a.txt /a.txt\n"
    )
    context = _context(tmp_path, dockerfile, **{"a.txt": "same everywhere\n"})
    pool = _pool(tmp_path, buildkit_entry("farm", buildkitd, platforms=["linux/amd64", "linux/arm64"]))
    spec = _spec(context, f"{registry.host}/kinds/multi:1", platforms=["linux/amd64", "linux/arm64"], network="host")
    built, _ = _build(pool, spec, tmp_path)
    index = _manifest(registry, "kinds/multi", built.digest)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json", "the recorded digest is the index's"
    children = {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]}
    assert set(children) == {"amd64", "arm64"}
    for arch, digest in children.items():
        child = _manifest(registry, "kinds/multi", digest)
        assert _file_in_image(registry, "kinds/multi", child, "arch") == f"built for {arch}\n"


ARM64_BUSYBOX = Path("/var/cache/pipeline/tools/arm64/busybox")
QEMU_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install-qemu-binfmt.sh"


def _qemu_binfmt() -> None:
    """qemu-user-static registered with binfmt and an arm64 busybox: installed once by the
    project's own script when missing (as the packaging tests install helm)."""
    if ARM64_BUSYBOX.is_file() and Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").is_file():
        return
    done = subprocess.run(["bash", str(QEMU_SCRIPT)], capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or not ARM64_BUSYBOX.is_file():
        pytest.fail(
            f"bash {QEMU_SCRIPT} could not set up arm64 emulation (exit {done.returncode}):\n{done.stderr[-2000:]}"
        )


def test_run_steps_on_arm64_execute_under_qemu_binfmt(tmp_path: Path, uses_buildx: Path, registry: Registry) -> None:
    """Debian's qemu-user-static registers binfmt (flag F) in this VM, so BuildKit runs arm64 RUN steps."""
    _qemu_binfmt()
    context = _context(
        tmp_path,
        "ARG TARGETARCH\nFROM scratch AS base-arm64\nCOPY busybox-arm64 /bin/busybox\n"
        "FROM scratch AS base-amd64\nCOPY busybox-amd64 /bin/busybox\nFROM base-${TARGETARCH}\n"
        'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox uname -m > /machine"]\n',
    )
    (context / "busybox-arm64").write_bytes(ARM64_BUSYBOX.read_bytes())
    (context / "busybox-amd64").write_bytes(Path("/bin/busybox").read_bytes())
    for name in ("busybox-arm64", "busybox-amd64"):
        (context / name).chmod(0o755)
    spec = _spec(context, f"{registry.host}/kinds/emulated:1", platforms=["linux/amd64", "linux/arm64"])
    emulating = start_buildkitd(tmp_path / "emulating", [], None)  # started after binfmt: it lists arm64
    try:
        built, _ = _build(_pool(tmp_path, {"name": "emulating", "buildkit": emulating.address}), spec, tmp_path)
    finally:
        emulating.stop()
    assert built.engine is not None and "linux/arm64" in built.engine.platforms, "BuildKit found the emulator"
    index = _manifest(registry, "kinds/emulated", built.digest)
    machines = {
        m["platform"]["architecture"]: _file_in_image(
            registry, "kinds/emulated", _manifest(registry, "kinds/emulated", m["digest"]), "machine"
        )
        for m in index["manifests"]
    }
    assert machines == {"amd64": "x86_64\n", "arm64": "aarch64\n"}


def test_provenance_mode_max_is_pushed_with_the_image_and_kept(
    tmp_path: Path, uses_buildx: Path, buildkitd: BuildkitDaemon, registry: Registry
) -> None:
    context = _context(tmp_path, "FROM scratch\nARG FLAVOUR\nCOPY a.txt /a.txt\n", **{"a.txt": "p\n"})
    spec = _spec(context, f"{registry.host}/kinds/provenance:1", provenance=True, args={"FLAVOUR": "mint"})
    built, _ = _build(_pool(tmp_path, buildkit_entry("farm", buildkitd)), spec, tmp_path)
    index = _manifest(registry, "kinds/provenance", built.digest)
    kinds = {m.get("annotations", {}).get("vnd.docker.reference.type") for m in index["manifests"]}
    assert "attestation-manifest" in kinds, index
    assert built.buildkit_provenance is not None
    assert built.buildkit_provenance["invocation"]["parameters"]["args"]["build-arg:FLAVOUR"] == "mint"


def test_cache_registry_refusing_writes_only_warns(
    tmp_path: Path, uses_buildx: Path, buildkitd: BuildkitDaemon, registry: Registry, secure_registry: Registry
) -> None:
    context = _context(tmp_path, "FROM scratch\nCOPY a.txt /a.txt\n", **{"a.txt": f"{tmp_path.name}\n"})
    refusing = f"{secure_registry.host}/kinds/cache:buildcache"  # basic auth, and this build has no credentials
    spec = _spec(context, f"{registry.host}/kinds/cache:1", cache_ref=refusing)
    built, lines = _build(_pool(tmp_path, buildkit_entry("farm", buildkitd)), spec, tmp_path)
    assert built.cache_exported is False
    warning = [line for line in lines if line.startswith("warning: the build cache was not exported")]
    assert warning and refusing in warning[0], lines[-20:]
    assert "401" in warning[0] or "unauthorized" in warning[0].lower(), warning[0]
    assert _manifest(registry, "kinds/cache", "1")["layers"], "the image is pushed all the same"


def test_registry_cache_lets_a_fresh_daemon_reuse_the_layers(
    tmp_path: Path, uses_buildx: Path, buildkitd: BuildkitDaemon, registry: Registry, base_image: str
) -> None:
    dockerfile = f"FROM {base_image}\nRUN echo ran-{tmp_path.name} && echo x > /out\nCOPY a.txt /a\n"
    context = _context(tmp_path, dockerfile, **{"a.txt": "1\n"})
    ran = re.compile(rf"^#\d+ \d+\.\d+ ran-{tmp_path.name}$")  # the RUN's output: it executed
    first, cold = _build(
        _pool(tmp_path, buildkit_entry("farm", buildkitd)),
        _spec(context, f"{registry.host}/kinds/fresh:1", network="host"),
        tmp_path,
    )
    assert first.cache_exported is True and any(ran.match(line) for line in cold)
    fresh = start_buildkitd(tmp_path / "fresh-daemon", [], None)
    try:
        (context / "a.txt").write_text("2\n")
        second, lines = _build(
            _pool(tmp_path, {"name": "fresh", "buildkit": fresh.address}),
            _spec(context, f"{registry.host}/kinds/fresh:2", network="host"),
            tmp_path,
        )
    finally:
        fresh.stop()
    assert not any(ran.match(line) for line in lines), "the fresh daemon took the RUN step from the registry cache"
    assert any(line.startswith("#") and "importing cache manifest from" in line for line in lines)
    assert second.digest != first.digest


def test_daemon_dying_mid_build_moves_the_build_to_the_next_builder(
    tmp_path: Path, uses_buildx: Path, buildkitd: BuildkitDaemon, registry: Registry, base_image: str
) -> None:
    dying = start_buildkitd(tmp_path / "dying-daemon", [], None)
    dockerfile = f"FROM {base_image}\nRUN echo started-{tmp_path.name} && sleep 8\n"
    context = _context(tmp_path, dockerfile)
    # a name of its own: a builder that failed is passed over for 30 s by name, in the whole process,
    # and test_builder_faults has a "dying" builder of its own that fails on purpose
    pool = _pool(tmp_path, {"name": "dying-daemon", "buildkit": dying.address}, buildkit_entry("farm", buildkitd))
    lines: list[str] = []
    output = re.compile(rf"^#\d+ \d+\.\d+ started-{tmp_path.name}$")  # the RUN's output, not its title

    def kill_when_started(line: str) -> None:
        lines.append(line)
        if output.match(line) and not killed.is_set():
            killed.set()
            threading.Thread(target=dying.kill).start()

    killed = threading.Event()

    try:
        built = pool.build(
            _spec(context, f"{registry.host}/kinds/dying:1", network="host"), kill_when_started, tmp_path / "scratch"
        )
    finally:
        dying.stop()
    assert killed.is_set() and built.engine is not None and built.engine.name == "farm"
    assert any(
        line.startswith("builder dying-daemon failed; trying the next builder: builder dying-daemon") for line in lines
    )
    assert built.skipped[0].startswith("builder dying-daemon failed:")
    assert _manifest(registry, "kinds/dying", built.digest)["layers"]
    with pytest.raises(EngineError):  # it stays passed over for a while: it failed a build moments ago
        pool.pick(_spec(context, "x/y:1"), exclude=frozenset({"farm"}))
    assert json.dumps(pool.status(pool.builders[0], fresh=True).to_dict())  # and probes again without raising
