"""Image insight against the real thing: images built by BuildKit on the test engine, saved with
`docker save`, and the same archives analysed by the real dive (0.13, `--ci --json`).

Every figure must equal dive's: wasted bytes, efficiency (bit for bit), user-wasted ratio and
the inefficient-file list in dive's order. Hand-made archives cover what BuildKit does not
produce on its own (dive's quirks, the OCI layout, gzip layers, non-UTF-8 names).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import BuildError
from pipeline.insight import ImageInsight, advise, analyze_archive, compare, save_and_analyze
from tests.services import DOCKER, DockerEngine

DIVE = str(Path(sys.executable).parent / "dive")

# name -> (Dockerfile body after FROM, files in the build context)
IMAGES: dict[str, tuple[str, dict[str, bytes]]] = {
    "deleted-overwritten-unchanged": (
        (
            "COPY big.bin /data/big.bin\n"
            "RUN mkdir -p /d/sub && echo aaaa > /d/a && head -c 3000 /dev/zero > /d/sub/b"
            " && echo keep > /keep.txt && echo over > /over.txt && echo same > /same.txt"
            " && ln /d/a /d/hard && ln -s /d/a /d/sym && mkdir /empty\n"
            "RUN rm /data/big.bin && echo overwritten-longer > /over.txt\n"
            "ENV FOO=bar\n"
            "COPY small.txt /keep.txt\n"
            "USER root\n"
        ),
        {"big.bin": bytes(range(256)) * 20, "small.txt": b"hello\n"},
    ),
    "directory-deleted-and-opaque": (
        (
            "RUN mkdir -p /d/sub /o/x && head -c 900 /dev/zero > /d/sub/b && echo 1 > /o/x/one"
            " && echo 2 > /o/two\n"
            "RUN rm -rf /d\n"
            "RUN rm -rf /o && mkdir -p /o && echo 3 > /o/three\n"
        ),  # BuildKit writes .wh..wh..opq
        {},
    ),
    "many-tied-sizes": (
        (
            "RUN mkdir /m && i=0; while [ $i -lt 150 ]; do head -c $((i % 3 + 5)) /dev/zero"
            " > /m/f$i; i=$((i+1)); done\n"
            "RUN i=0; while [ $i -lt 150 ]; do if [ $((i % 5)) -eq 0 ]; then rm /m/f$i;"
            " else echo y > /m/f$i; fi; i=$((i+1)); done\n"
        ),
        {},
    ),
    "repeated-layer": (  # the second COPY has the first's diff ID: a symlink in the archive
        "COPY a.bin /a.bin\nRUN rm /a.bin\nCOPY a.bin /a.bin\n",
        {"a.bin": b"\x01" * 700},
    ),
}


@dataclass(frozen=True)
class DiveReport:
    image: dict[str, Any]
    layer_sizes: list[int]
    user_wasted: float | None  # full precision, when dive prints it
    user_wasted_text: str  # "62.5777" as in "userWastedPercent: 62.5777 %"


def run_dive(tar: Path) -> DiveReport:
    """Real dive on a docker-archive: the JSON export, then the CI report for the user ratio."""
    out = tar.with_suffix(".dive.json")
    subprocess.run(
        [DIVE, "--ci", "--source", "docker-archive", str(tar), "--json", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    exported = json.loads(out.read_text())
    ci = subprocess.run(
        [DIVE, "--ci", "--highestUserWastedPercent", "0", "--source", "docker-archive", str(tar)],
        check=False,
        capture_output=True,
        timeout=120,
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", ci.stdout.decode(errors="replace"))
    printed = re.search(r"userWastedPercent: (\S+) %", text)
    full = re.search(r"%-user-wasted-bytes=(\S+) > threshold", text)
    assert printed, text
    return DiveReport(
        exported["image"],
        [x["sizeBytes"] for x in exported["layer"]],
        float(full.group(1)) if full else None,
        printed.group(1),
    )


def assert_same_as_dive(insight: ImageInsight, dive: DiveReport) -> None:
    assert insight.wasted_bytes == dive.image["inefficientBytes"]
    assert insight.efficiency == dive.image["efficiencyScore"]  # exact, not approximately
    expected = [(f["file"], f["count"], f["sizeBytes"]) for f in dive.image["fileReference"]]
    assert [(f.path, f.count, f.wasted_bytes) for f in insight.wasted_files] == expected[:20]
    ratio = insight.user_wasted_percent
    assert dive.user_wasted_text == ("NaN" if math.isnan(ratio) else f"{ratio * 100:.4f}")
    if dive.user_wasted is not None:
        assert ratio == dive.user_wasted
    user_bytes = sum(dive.layer_sizes[1:])
    if user_bytes:
        assert ratio == dive.image["inefficientBytes"] / user_bytes


def _save(engine: DockerEngine, ref: str, tar: Path) -> Path:
    engine.docker("save", "-o", str(tar), ref)
    return tar


@pytest.fixture(scope="module")
def built(
    engine: DockerEngine, base_image: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[str, Path, DiveReport]]:
    """Each image of IMAGES built, saved and run through dive once: name -> (ref, tar, dive)."""
    root = tmp_path_factory.mktemp("insight")
    images = {}
    for name, (steps, files) in IMAGES.items():
        ctx = root / name
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM {base_image}\n{steps}")
        for file_name, content in files.items():
            (ctx / file_name).write_bytes(content)
        ref = f"insight/{name}:1"
        engine.docker("build", "--network", "host", "-t", ref, str(ctx))
        tar = _save(engine, ref, root / f"{name}.tar")
        images[name] = (ref, tar, run_dive(tar))
    return images


@pytest.mark.parametrize("name", list(IMAGES))
def test_waste_and_efficiency_equal_dive(built: dict[str, tuple[str, Path, DiveReport]], name: str) -> None:
    _, tar, dive = built[name]
    insight = analyze_archive(tar)
    assert_same_as_dive(insight, dive)
    if name != "repeated-layer":
        assert insight.size == dive.image["sizeBytes"]


def test_the_scenarios_exercise_what_they_claim(built: dict[str, tuple[str, Path, DiveReport]]) -> None:
    by_path = {n: {f.path: f for f in analyze_archive(t).wasted_files} for n, (_, t, _) in built.items()}
    first = by_path["deleted-overwritten-unchanged"]
    assert first["/data/big.bin"].wasted_bytes == 5120  # deleted: the whiteout adds 0
    assert first["/over.txt"].wasted_bytes == 5 + 19  # overwritten: both copies count
    assert "/same.txt" not in first and "/d/hard" not in first
    opaque = built["directory-deleted-and-opaque"][1]
    names = []
    with tarfile.open(opaque) as outer:
        for member in outer.getmembers():
            if member.name.endswith("layer.tar"):
                with tarfile.open(fileobj=outer.extractfile(member)) as layer:
                    names += layer.getnames()
    assert "o/.wh..wh..opq" in names and ".wh.d" in names
    assert "/d" not in by_path["directory-deleted-and-opaque"]  # dive: a deleted dir is free
    assert len(built["many-tied-sizes"][2].image["fileReference"]) > 100
    with tarfile.open(built["repeated-layer"][1]) as outer:
        assert any(m.issym() and m.name.endswith("layer.tar") for m in outer.getmembers())


@pytest.mark.parametrize("name", ["deleted-overwritten-unchanged", "repeated-layer"])
def test_layers_match_docker_image_history(
    engine: DockerEngine, built: dict[str, tuple[str, Path, DiveReport]], name: str
) -> None:
    ref, tar, dive = built[name]
    out = engine.docker(
        "image", "history", "--no-trunc", "--human=false", "--format", "{{json .}}", ref
    ).stdout.decode()
    history = [json.loads(line) for line in out.splitlines()][::-1]  # oldest first
    layers = analyze_archive(tar).layers
    assert [x.created_by for x in layers] == [h["CreatedBy"] for h in history]
    for layer, entry in zip(layers[1:], history[1:], strict=True):  # BuildKit's layers
        assert layer.size == int(entry["Size"])
    # The imported base: the engine counts its symlinks' target lengths, the archive has 0.
    assert layers[0].size == dive.layer_sizes[0]
    assert [x.empty for x in layers].count(True) == (2 if name.startswith("deleted") else 0)
    assert all(x.digest and x.digest.startswith("sha256:") for x in layers if not x.empty)


def test_save_and_analyze_cleans_up_and_errors_are_actionable(
    engine: DockerEngine, built: dict[str, tuple[str, Path, DiveReport]], tmp_path: Path
) -> None:
    ref, tar, _ = built["deleted-overwritten-unchanged"]
    scratch = tmp_path / "scratch"
    docker_cmd = [DOCKER, "--host", engine.host]
    assert save_and_analyze(docker_cmd, ref, scratch) == analyze_archive(tar)
    assert list(scratch.iterdir()) == []
    with pytest.raises(BuildError, match=r"docker save insight/absent:1.*exit code"):
        save_and_analyze(docker_cmd, "insight/absent:1", scratch)
    assert list(scratch.iterdir()) == []
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(BuildError, match="junk.tar is unreadable.*docker save"):
        analyze_archive(tmp_path / "junk.tar")


def test_advice_and_comparison_for_real_builds(built: dict[str, tuple[str, Path, DiveReport]], tmp_path: Path) -> None:
    previous = analyze_archive(built["directory-deleted-and-opaque"][1])
    current = analyze_archive(built["deleted-overwritten-unchanged"][1])
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM busybox:1.36\n" + IMAGES["deleted-overwritten-unchanged"][0])
    advice = advise(dockerfile, current)
    waste = next(a for a in advice if a.code == "PL004")
    assert waste.level == "warning" and "/data/big.bin (5.1 kB in 2 layers)" in waste.message
    assert any(a.code == "DL3002" for a in advice)  # hadolint ran: last USER is root
    delta = compare(previous.to_dict(), current)
    assert delta["wasted_bytes_delta"] == current.wasted_bytes - previous.wasted_bytes
    assert delta["layer_count_delta"] == current.layer_count - previous.layer_count == 1
    assert delta["size_delta"] == current.size - previous.size


# --- hand-made archives: dive's quirks and the other archive layouts ----------------------


def _layer(*entries: tuple[str, str, Any]) -> bytes:
    """A layer tar: (name, "f" with size | "d" | "h" hard link to | "l" symlink to, arg)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, arg in entries:
            info, data = tarfile.TarInfo(name), None
            if kind == "f":
                info.size, data = arg, io.BytesIO(b"x" * arg)
            elif kind == "d":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            else:
                info.type, info.linkname = (tarfile.LNKTYPE if kind == "h" else tarfile.SYMTYPE), arg
            tar.addfile(info, data)
    return buf.getvalue()


def _write_archive(path: Path, layers: list[bytes], *, oci: bool = False, gzipped: tuple[int, ...] = ()) -> Path:
    """A docker-archive: legacy (<n>/layer.tar) or OCI layout (blobs/ + index.json)."""
    with tarfile.open(path, "w") as tar:

        def add(name: str, data: bytes) -> str:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            return name

        def blob(data: bytes) -> str:
            return add(f"blobs/sha256/{hashlib.sha256(data).hexdigest()}", data)

        stored = [gzip.compress(x, mtime=0) if n in gzipped else x for n, x in enumerate(layers)]
        paths = [blob(x) if oci else add(f"{n}/layer.tar", x) for n, x in enumerate(stored)]
        config = json.dumps(
            {
                "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(x).hexdigest() for x in layers]},
                "history": [{"created_by": f"step {n}"} for n in range(len(layers))],
            }
        ).encode()
        config_path = blob(config) if oci else add("config.json", config)
        if oci:
            digests = [{"digest": "sha256:" + p.rsplit("/", 1)[1]} for p in [config_path, *paths]]
            manifest = blob(json.dumps({"config": digests[0], "layers": digests[1:]}).encode())
            add("index.json", json.dumps({"manifests": [{"digest": "sha256:" + manifest.rsplit("/", 1)[1]}]}).encode())
        add("manifest.json", json.dumps([{"Config": config_path, "Layers": paths}]).encode())
    return path


BASE = _layer(("bin", "d", None), ("bin/a", "f", 100), ("etc", "d", None), ("etc/x", "f", 10))
HANDMADE: dict[str, list[bytes]] = {
    # a whiteout of a path no lower layer has: dive stops walking that layer
    "whiteout-of-missing-path": [
        BASE,
        _layer((".wh.nothere", "f", 0), ("zzz", "f", 5)),
        _layer(("bin/a", "f", 3), ("zzz", "f", 1)),
    ],
    # parents never listed are "not directories": deleting one frees nothing
    "implicit-directory-deleted": [_layer(("opt/app/f", "f", 50)), _layer((".wh.opt", "f", 0), ("bin/a", "f", 1))],
    "file-replaced-by-directory": [
        BASE,
        _layer(("bin/a", "d", None), ("bin/a/b", "f", 4)),
        _layer(("bin/.wh.a", "f", 0)),
    ],
    "opaque-directory": [
        _layer(("o", "d", None), ("o/a", "f", 11), ("o/b", "f", 12)),
        _layer(("o", "d", None), ("o/.wh..wh..opq", "f", 0), ("o/c", "f", 13)),
        _layer(("o/.wh.b", "f", 0)),
    ],
    "hard-link-then-overwrite": [
        _layer(("a", "f", 10), ("b", "h", "a"), ("s", "l", "a")),
        _layer(("b", "f", 3), (".wh.a", "f", 0), ("s", "f", 2)),
    ],
    "non-utf8-and-long-names": [
        _layer(("caf\udce9", "f", 5), ("d/" + "n" * 150, "f", 5)),
        _layer(("caf\udce9", "f", 6), ("d/" + "n" * 150, "f", 6)),
    ],
}


@pytest.mark.parametrize("name", list(HANDMADE))
def test_handmade_archives_equal_dive(tmp_path: Path, name: str) -> None:
    tar = _write_archive(tmp_path / f"{name}.tar", HANDMADE[name])
    assert_same_as_dive(analyze_archive(tar), run_dive(tar))


@pytest.mark.parametrize("gzipped", [(), (0, 2)])
def test_oci_layout_archives_equal_dive(tmp_path: Path, gzipped: tuple[int, ...]) -> None:
    layers = [BASE, _layer(("bin/a", "f", 7)), _layer(("etc/.wh.x", "f", 0))]
    tar = _write_archive(tmp_path / "oci.tar", layers, oci=True, gzipped=gzipped)
    dive = run_dive(tar)
    insight = analyze_archive(tar)
    assert_same_as_dive(insight, dive)
    assert insight.size == dive.image["sizeBytes"] == 117
    assert [x.created_by for x in insight.layers] == ["step 0", "step 1", "step 2"]
