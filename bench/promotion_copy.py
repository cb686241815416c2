"""Benchmark: promotion by digest (``pipeline.registry.copy_image``) against skopeo, crane and docker.

Goals, on this 2-core machine, everything on 127.0.0.1 (goals in brackets):

1. Copy of a 210 MB image of 4 incompressible layers (120 + 50 + 30 + 10 MB) from registry A
   to an empty registry B, median of 3 runs:
   - ours (``copy_image`` with one tag) / ``skopeo copy --preserve-digests`` ...        [<= 1.0]
   - ours / ``crane copy`` (go-containerregistry) ..................................... [<= 1.0]
   - ours / ``docker pull A/repo@digest && docker tag && docker push B/repo:tag``      [<= 0.35]
   The digest in B must be the source's (checked with ``skopeo inspect``); docker's push is
   shown changing it.
2. Re-promotion when the target already holds every blob and the manifest (a new tag):
   0 bytes sent, and at most 100 ms of wall time, median of 5.
3. RSS growth of this process while ``copy_image`` copies a 1 GB image (4 x 256 MB): at most
   64 MB.

Both copy ratios are measured on every registry implementation of ``--registries`` (default
both: distribution 2.8, Debian's, and distribution 3, ``registry3``), source and target of the
same kind; the docker baseline, the re-promotion and the RSS test run on the first only.

Services: ``tests.services.Registry`` / ``Registry3`` (plain HTTP) for the source and a fresh
one for every measured copy, and one ``tests.services.DockerEngine`` for the docker baseline.
Images are generated here as OCI layouts, streamed to disk, and pushed into the source with
skopeo (``tests.images.skopeo_push``) before anything is measured.

    cd /work/main && uv run python bench/promotion_copy.py [--quick] [--runs N] [--repeat N] [--keep]
        [--registries 2,3]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import hashlib
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import sys
import tarfile
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from _common import (
    OutOfTime,
    Stopwatch,
    code_version,
    machine_load,
    median,
    table,
    time_limit,
)

from pipeline.config import RegistryConfig
from pipeline.registry import CopyReport, RegistryClient, copy_image
from tests.images import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, OciLayout, skopeo_push
from tests.services import REGISTRY3, SKOPEO, TOOLS_BIN, DockerEngine, Registry, Registry3, run, skopeo_inspect

MB = 1 << 20  # every "MB" this script prints is 2**20 bytes
SIZES = {  # layer sizes in MB
    "full": {"image": [120, 50, 30, 10], "big": [256, 256, 256, 256]},
    "quick": {"image": [20, 15, 10, 5], "big": [50, 50, 50, 50]},
}
GOAL_SKOPEO, GOAL_CRANE, GOAL_DOCKER, GOAL_REPROMOTE_MS, GOAL_RSS_MB = 1.0, 1.0, 0.35, 100.0, 64.0
CRANE = TOOLS_BIN / "crane"  # scripts/install-go-tools.sh crane
IMPLEMENTATIONS: dict[str, type[Registry]] = {"2": Registry, "3": Registry3}
IMPLEMENTATION_NAMES = {"2": "distribution 2.8", "3": "distribution 3"}
REPO, TAG = "bench/app", "promoted"
PARALLEL = 4  # copy_image's default
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Images: OCI layouts written in streaming fashion
# ---------------------------------------------------------------------------------------------


def write_layer(blobs_dir: str, size: int, seed: int) -> dict[str, Any]:
    """One layer blob, a tar of one file of ``size`` random bytes, gzip level 1, streamed to
    disk 1 MB at a time (runs in a worker process). Returns digest, size and diff_id.

    The bytes come from ``random.Random(seed)`` (incompressible; ``tests.images.layer_tar``'s
    sha256-counter bytes repeat every 32 bytes and gzip to 2 % of their size). The deflate
    strategy is Huffman-only: on random data level 1's match search finds nothing and runs at
    about 28 MB/s here, Huffman-only at about 60 MB/s, with the same (incompressible) output."""
    rng = random.Random(seed)
    tmp = Path(blobs_dir) / f".partial-{seed}"
    diff, comp, written = hashlib.sha256(), hashlib.sha256(), 0
    deflate = zlib.compressobj(1, zlib.DEFLATED, 31, 9, zlib.Z_HUFFMAN_ONLY)  # 31: gzip wrapper
    with open(tmp, "wb") as out:

        def feed(data: bytes) -> None:
            nonlocal written
            diff.update(data)
            packed = deflate.compress(data)
            comp.update(packed)
            out.write(packed)
            written += len(packed)

        info = tarfile.TarInfo(f"data-{seed}.bin")
        info.size, info.mtime, info.mode = size, 0, 0o644
        feed(info.tobuf(tarfile.USTAR_FORMAT))
        left = size
        while left:
            n = min(MB, left)
            feed(rng.randbytes(n))
            left -= n
        # pad the file to a 512-byte block, two zero blocks end the archive, and tarfile pads
        # the whole to a 10 KiB record
        trailer = -size % 512 + 1024
        feed(b"\0" * (trailer + -(512 + size + trailer) % tarfile.RECORDSIZE))
        tail = deflate.flush()
        comp.update(tail)
        out.write(tail)
        written += len(tail)
    digest = "sha256:" + comp.hexdigest()
    os.replace(tmp, Path(blobs_dir) / digest.split(":")[1])
    return {"digest": digest, "size": written, "diff_id": "sha256:" + diff.hexdigest(), "uncompressed": size}


@dataclass
class Image:
    name: str
    repo: str
    layer_mb: list[int]
    seed: int
    digest: str = ""
    layers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def compressed_bytes(self) -> int:
        return sum(int(x["size"]) for x in self.layers)


def submit_layers(
    pool: concurrent.futures.ProcessPoolExecutor, layout: OciLayout, images: Sequence[Image]
) -> list[tuple[Image, int, concurrent.futures.Future[Any]]]:
    jobs = [(image, i, mb) for image in images for i, mb in enumerate(image.layer_mb)]
    jobs.sort(key=lambda job: -job[2])  # largest first: the two workers end together
    blobs = str(layout.root / "blobs" / "sha256")
    return [(image, i, pool.submit(write_layer, blobs, mb * MB, image.seed * 100 + i)) for image, i, mb in jobs]


def finish_image(layout: OciLayout, image: Image, layers: list[dict[str, Any]]) -> None:
    """Config and manifest (small, in memory) around the layers already on disk."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/data"]},
            "rootfs": {"type": "layers", "diff_ids": [x["diff_id"] for x in layers]},
        },
        separators=(",", ":"),
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, **layout.blob(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": x["digest"], "size": x["size"]} for x in layers],
        },
        separators=(",", ":"),
    ).encode()
    image.layers = layers
    image.digest = layout.tag(image.name, {"mediaType": OCI_MANIFEST, **layout.blob(manifest)})


# ---------------------------------------------------------------------------------------------
# Measuring: CPU, RSS
# ---------------------------------------------------------------------------------------------


def group_cpu(pgid: int) -> float:
    """CPU seconds of the live processes of one process group (a service started in its own
    session: the registry, dockerd with its containerd)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        if int(rest[2]) == pgid:
            total += int(rest[11]) + int(rest[12])
    return total / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


class CpuMeter:
    """CPU used during one measurement: this process (ours), waited-for children (skopeo, the
    docker CLI), the registries, dockerd's group, and the machine as a whole."""

    def __init__(self, registries: Sequence[Registry], engine: DockerEngine | None) -> None:
        self.groups = {
            "registries": [r.proc.pid for r in registries if r.proc],
            "dockerd": [engine.proc.pid] if engine and engine.proc else [],
        }
        self.start = self._snapshot()

    def _snapshot(self) -> dict[str, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy, steal = machine_cpu()
        snap = {
            "this process": time.process_time(),
            "CLI children": children.ru_utime + children.ru_stime,
            "machine busy": busy,
            "steal": steal,
        }
        for name, pgids in self.groups.items():
            snap[name] = sum(group_cpu(p) for p in pgids)
        return snap

    def stop(self) -> dict[str, float]:
        end = self._snapshot()
        return {k: end[k] - self.start[k] for k in end}


def status_kb(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field_name}")


class RssSampler:
    """The highest VmRSS seen every ``period`` seconds, plus the kernel's own peak (VmHWM,
    reset through /proc/self/clear_refs before the copy when the kernel allows it)."""

    def __init__(self, period: float = 0.02) -> None:
        self.period, self.samples, self.peak_kb = period, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        try:
            Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak RSS
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, status_kb("VmRSS"))
            self.samples += 1
            self._stop.wait(self.period)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, status_kb("VmRSS"))
        self.hwm_kb = status_kb("VmHWM")


# ---------------------------------------------------------------------------------------------
# The three ways to promote
# ---------------------------------------------------------------------------------------------


@dataclass
class Timed:
    kind: str
    run: int
    seconds: float
    cpu: dict[str, float]
    digest: str  # what the target answers for REPO:TAG (skopeo inspect)
    phases: dict[str, float] = field(default_factory=dict)
    layers_kept: int = 0  # layer digests of the target's manifest that are the source's
    pushed_digest: str = ""  # what `docker push` printed
    report: CopyReport | None = None


def client(registry: Registry) -> RegistryClient:
    return RegistryClient(RegistryConfig(url=registry.host, insecure=True))


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.services: list[Registry | DockerEngine] = []
        self.source: Registry | None = None
        self.engine: DockerEngine | None = None
        self.source_client: RegistryClient | None = None
        self.kind: type[Registry] = Registry  # the implementation measured now (see use())
        self.sources: dict[str, tuple[Registry, RegistryClient]] = {}
        self.skopeo_env = {**os.environ, "HOME": str(workdir / "home")}
        self.counter = 0

    # -- services ---------------------------------------------------------------------------

    @contextmanager
    def target(self, name: str) -> Iterator[Registry]:
        """A new, empty registry for one measurement, deleted afterwards (disk and state)."""
        self.counter += 1
        registry = self.kind(self.workdir / f"t{self.counter:02d}-{name}")
        registry.start()
        self.services.append(registry)
        try:
            yield registry
        finally:
            registry.stop(remove=not self.args.keep)
            self.services.remove(registry)

    def use(self, implementation: str) -> None:
        """Measure on this registry implementation from now on: its source, its targets."""
        self.source, self.source_client = self.sources[implementation]
        self.kind = IMPLEMENTATIONS[implementation]

    def stop_all(self) -> None:
        for service in reversed(self.services):
            try:
                service.stop()
            except Exception as exc:  # keep stopping the others
                log(f"stopping {service.name} failed: {exc}")
        self.services.clear()

    # -- the contenders ---------------------------------------------------------------------

    def ours(
        self, image: Image, target: Registry, tag: str = TAG, target_client: RegistryClient | None = None
    ) -> tuple[float, CopyReport]:
        assert self.source_client is not None
        own = target_client is None
        dest = target_client or client(target)
        try:
            with Stopwatch() as sw:
                report = copy_image(
                    self.source_client, image.repo, dest, image.repo, image.digest, tags=[tag], parallel=PARALLEL
                )
        finally:
            if own:
                dest.close()
        return sw.seconds, report

    def skopeo(self, image: Image, target: Registry, tag: str = TAG) -> float:
        assert self.source is not None
        with Stopwatch() as sw:
            run(
                [
                    SKOPEO,
                    "copy",
                    "--preserve-digests",
                    "--src-tls-verify=false",
                    "--dest-tls-verify=false",
                    f"docker://{self.source.host}/{image.repo}@{image.digest}",
                    f"docker://{target.host}/{image.repo}:{tag}",
                ],
                env=self.skopeo_env,
                timeout=300,
            )
        return sw.seconds

    def crane(self, image: Image, target: Registry, tag: str = TAG) -> float:
        """``crane copy`` keeps every digest (manifest bytes as they are, blobs streamed)."""
        assert self.source is not None
        with Stopwatch() as sw:
            run(
                [
                    str(CRANE),
                    "copy",
                    "--insecure",
                    f"{self.source.host}/{image.repo}@{image.digest}",
                    f"{target.host}/{image.repo}:{tag}",
                ],
                env=self.skopeo_env,
                timeout=300,
            )
        return sw.seconds

    def docker(self, image: Image, target: Registry) -> tuple[dict[str, float], str]:
        assert self.source is not None and self.engine is not None
        src = f"{self.source.host}/{image.repo}@{image.digest}"
        dest = f"{target.host}/{image.repo}:{TAG}"
        phases: dict[str, float] = {}
        out = ""
        for name, args in (("pull", ("pull", src)), ("tag", ("tag", src, dest)), ("push", ("push", dest))):
            with Stopwatch() as sw:
                done = self.engine.docker(*args, timeout=300)
            phases[name] = sw.seconds
            out = done.stdout.decode(errors="replace")
        found = re.search(r"digest: (sha256:[0-9a-f]{64})", out)
        return phases, found.group(1) if found else "?"

    def clear_engine(self) -> None:
        """No image left in the engine, so the next pull downloads and extracts every layer."""
        assert self.engine is not None
        ids = self.engine.docker("images", "-aq").stdout.decode().split()
        if ids:
            self.engine.docker("image", "rm", "-f", *sorted(set(ids)))
        self.engine.docker("image", "prune", "-af")
        left = self.engine.docker("images", "-aq").stdout.decode().split()
        if left:
            raise RuntimeError(f"images left in the engine after pruning: {left}")

    def inspect(self, target: Registry, image: Image, tag: str = TAG) -> tuple[str, int]:
        """(digest, layers whose digest is the source's) of target/repo:tag, seen by skopeo."""
        ref = f"{target.host}/{image.repo}:{tag}"
        digest = str(skopeo_inspect(ref, tls_verify=False)["Digest"])
        raw = skopeo_inspect(ref, tls_verify=False, raw=True)
        source = {str(x["digest"]) for x in image.layers}
        return digest, sum(1 for x in raw.get("layers", []) if str(x.get("digest")) in source)

    def measure(self, kind: str, run_no: int, image: Image) -> Timed:
        """One fresh target registry, one timed promotion into it, then its digest."""
        assert self.source is not None
        with self.target(f"{kind}-r{run_no}") as target:
            report, pushed = None, ""
            cpu = CpuMeter([self.source, target], self.engine)
            if kind == "ours":
                seconds, report = self.ours(image, target)
                phases: dict[str, float] = {}
            elif kind == "skopeo":
                seconds, phases = self.skopeo(image, target), {}
            elif kind == "crane":
                seconds, phases = self.crane(image, target), {}
            else:
                phases, pushed = self.docker(image, target)
                seconds = sum(phases.values())
            used = cpu.stop()
            digest, kept = self.inspect(target, image)
        if kind == "docker":
            self.clear_engine()
        return Timed(kind, run_no, seconds, used, digest, phases, kept, pushed, report)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def prepare(bench: Bench, images: Sequence[Image], implementations: Sequence[str]) -> None:
    """Start a source registry per implementation and the engine while worker processes write
    the layers, then push the images into the sources with skopeo (the RSS image into the first
    only) and delete the layout."""
    layout = OciLayout(bench.workdir / "layout")
    context = multiprocessing.get_context("fork")  # no threads yet in this process
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1), mp_context=context)
    try:
        with Stopwatch() as gen:
            jobs = submit_layers(pool, layout, images)
            for implementation in implementations:
                source = IMPLEMENTATIONS[implementation](bench.workdir / f"source-{implementation}")
                source.start()
                bench.services.append(source)
                bench.sources[implementation] = (source, client(source))
            bench.use(implementations[0])
            assert bench.source is not None
            bench.engine = DockerEngine(bench.workdir / "engine")
            bench.engine.start()
            bench.services.append(bench.engine)
            log(f"source registry {bench.source.host}, engine {bench.engine.host}")
            results: dict[str, dict[int, dict[str, Any]]] = {}
            for image, i, future in jobs:
                results.setdefault(image.name, {})[i] = future.result()
            for image in images:
                finish_image(layout, image, [results[image.name][i] for i in range(len(image.layer_mb))])
        uncompressed = sum(x["uncompressed"] for im in images for x in im.layers)
        compressed = sum(im.compressed_bytes for im in images)
        log(
            f"layers generated: {uncompressed / MB:.0f} MB -> {compressed / MB:.0f} MB gzip "
            f"({compressed / uncompressed:.3f}) in {gen.seconds:.1f} s (engine start included)"
        )
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    with Stopwatch() as push:
        for number, implementation in enumerate(implementations):
            for image in images[:-1] if number else images:
                skopeo_push(layout, image.name, bench.sources[implementation][0], image.repo)
    log(f"pushed the images into {len(implementations)} source(s) with skopeo in {push.seconds:.1f} s")
    shutil.rmtree(layout.root)


def warm_up(bench: Bench, image: Image, docker: bool = True) -> None:
    """First-use costs (code paths, binaries in the page cache, the engine's first pull) paid
    once, not counted, with a 2 MB image."""
    with bench.target("warmup") as target:
        bench.ours(image, target)
        bench.skopeo(image, target, tag="skopeo")
        bench.crane(image, target, tag="crane")
        if docker:
            bench.docker(image, target)
    if docker:
        bench.clear_engine()


def measure_copies(bench: Bench, image: Image, runs: int, docker: bool = True) -> list[Timed]:
    results = []
    for run_no in range(1, runs + 1):
        # Odd runs: ours first; even runs: ours last. Each promotion gets its own new registry.
        order = ["ours", "skopeo", "crane", "docker"] if docker else ["ours", "skopeo", "crane"]
        for kind in order if run_no % 2 else reversed(order):
            timed = bench.measure(kind, run_no, image)
            results.append(timed)
            log(f"run {run_no}/{runs}: {kind} {timed.seconds:.2f} s")
    return results


@dataclass
class Repromotion:
    reused_ms: list[float]
    fresh_clients_ms: list[float]
    skopeo_ms: list[float]
    reports: list[CopyReport]
    first: CopyReport
    digest: str


def measure_repromotion(bench: Bench, image: Image, repeat: int) -> Repromotion:
    """Target holds the image already (first promotion, not timed); promote again with new tags."""
    assert bench.source is not None and bench.source_client is not None
    with bench.target("repromote") as target:
        dest = client(target)
        try:
            _, first = bench.ours(image, target, target_client=dest)
            reused, fresh, reports = [], [], []
            for k in range(repeat):
                seconds, report = bench.ours(image, target, tag=f"again-{k}", target_client=dest)
                reused.append(seconds * 1000)
                reports.append(report)
            for k in range(repeat):  # what a one-off CLI call pays on top: two new clients
                with Stopwatch() as sw:
                    src, dst = client(bench.source), client(target)
                    report = copy_image(
                        src, image.repo, dst, image.repo, image.digest, tags=[f"fresh-{k}"], parallel=PARALLEL
                    )
                    src.close()
                    dst.close()
                fresh.append(sw.seconds * 1000)
                reports.append(report)
            skopeo = [bench.skopeo(image, target, tag=f"skopeo-{k}") * 1000 for k in range(3)]
            digest, _ = bench.inspect(target, image, tag=f"again-{repeat - 1}")
        finally:
            dest.close()
    return Repromotion(reused, fresh, skopeo, reports, first, digest)


@dataclass
class RssResult:
    before_kb: int
    peak_kb: int
    hwm_kb: int
    hwm_reset: bool
    samples: int
    seconds: float
    report: CopyReport
    digest: str
    skopeo_seconds: float


def measure_rss(bench: Bench, image: Image) -> RssResult:
    assert bench.source_client is not None
    with bench.target("rss") as target:
        dest = client(target)
        try:
            gc.collect()
            before = status_kb("VmRSS")
            with RssSampler() as sampler, Stopwatch() as sw:
                report = copy_image(
                    bench.source_client, image.repo, dest, image.repo, image.digest, tags=[TAG], parallel=PARALLEL
                )
        finally:
            dest.close()
        digest, _ = bench.inspect(target, image)
    with bench.target("rss-skopeo") as target:  # the same copy by skopeo, for the speed only
        skopeo_seconds = bench.skopeo(image, target)
    return RssResult(
        before,
        sampler.peak_kb,
        sampler.hwm_kb,
        sampler.hwm_reset,
        sampler.samples,
        sw.seconds,
        report,
        digest,
        skopeo_seconds,
    )


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def copy_ratios(copies: Sequence[Timed], image: Image, where: str) -> tuple[list[list[object]], list[str]]:
    """The summary rows ours / skopeo and ours / crane (medians) for one implementation's copies,
    and the digest checks that failed."""
    secs = {k: [t.seconds for t in copies if t.kind == k] for k in ("ours", "skopeo", "crane")}
    mb = image.compressed_bytes / MB
    rows: list[list[object]] = []
    for tool_name, goal in (("skopeo", GOAL_SKOPEO), ("crane", GOAL_CRANE)):
        ratio = median(secs["ours"]) / median(secs[tool_name])
        rows.append(
            [
                f"copy {mb:.0f} MB on {where}: ours / {tool_name} copy",
                f"{ratio:.3f}",
                f"<= {goal}",
                verdict(ratio <= goal),
            ]
        )
    failures = [
        f"{where}: {t.kind} run {t.run}: target digest {t.digest} is not {image.digest}"
        for t in copies
        if t.kind != "docker" and t.digest != image.digest
    ]
    return rows, failures


def report(
    size: str,
    runs: int,
    image: Image,
    big: Image,
    copies: list[Timed],
    again: Repromotion,
    rss: RssResult,
    where: str = "distribution 2.8",
) -> tuple[list[list[object]], list[str]]:
    """Print the details; return the summary rows and the list of failed checks."""
    failures: list[str] = []
    by_kind = {k: [t for t in copies if t.kind == k] for k in ("ours", "skopeo", "crane", "docker")}
    secs = {k: [t.seconds for t in v] for k, v in by_kind.items()}
    mb = image.compressed_bytes / MB
    print()
    print(
        f"promotion_copy: {size} mode; image {image.repo} {'+'.join(map(str, image.layer_mb))} MB "
        f"in {len(image.layer_mb)} layers ({mb:.0f} MB compressed, incompressible), {runs} run(s), "
        f"each into a new empty registry; copy_image(parallel={PARALLEL}); MB = 2**20 bytes"
    )
    print(f"source digest {image.digest}")
    print(
        "skopeo: skopeo copy --preserve-digests --src-tls-verify=false --dest-tls-verify=false "
        "docker://A/repo@digest docker://B/repo:tag"
    )
    print("crane: crane copy --insecure A/repo@digest B/repo:tag")
    print(
        "docker: docker pull A/repo@digest && docker tag A/repo@digest B/repo:tag && "
        "docker push B/repo:tag (engine emptied after every run)"
    )
    print()
    headers = ["copy (s)", *[f"run {i}" for i in range(1, runs + 1)], "median", "MB/s"]
    rows: list[list[object]] = []
    for kind, label in (
        ("ours", "ours: copy_image"),
        ("skopeo", "skopeo copy"),
        ("crane", "crane copy"),
        ("docker", "docker pull + tag + push"),
    ):
        rows.append([label, *secs[kind], median(secs[kind]), mb / median(secs[kind])])
    for phase in ("pull", "tag", "push"):
        values = [t.phases[phase] for t in by_kind["docker"]]
        rows.append([f"  docker {phase}", *values, median(values), ""])
    per_run = {k: [a / b for a, b in zip(secs["ours"], secs[k], strict=True)] for k in ("skopeo", "crane", "docker")}
    rows.append(["ratio ours / skopeo", *per_run["skopeo"], median(secs["ours"]) / median(secs["skopeo"]), ""])
    rows.append(["ratio ours / crane", *per_run["crane"], median(secs["ours"]) / median(secs["crane"]), ""])
    rows.append(["ratio ours / docker", *per_run["docker"], median(secs["ours"]) / median(secs["docker"]), ""])
    print(table(headers, rows))
    spread = secs["skopeo"]
    if len(spread) > 1:
        print(
            f"noise: skopeo did the same copy each run in {min(spread):.2f}-{max(spread):.2f} s "
            f"({(max(spread) - min(spread)) / median(spread):.0%} of its median)"
        )
    print()
    keys = ["this process", "CLI children", "registries", "dockerd", "machine busy", "steal"]
    cpu_rows = [[f"{key} (CPU s)", *[median([t.cpu[key] for t in by_kind[k]]) for k in by_kind]] for key in keys]
    cpu_rows.append(
        [
            "machine busy / wall (of 2 CPUs)",
            *[median([t.cpu["machine busy"] / t.seconds for t in by_kind[k]]) for k in by_kind],
        ]
    )
    print(table(["CPU during the copy (median)", *by_kind], cpu_rows))
    client_cpu = {
        "ours": median([t.cpu["this process"] for t in by_kind["ours"]]),
        "skopeo": median([t.cpu["CLI children"] for t in by_kind["skopeo"]]),
    }
    with_registries = {k: client_cpu[k] + median([t.cpu["registries"] for t in by_kind[k]]) for k in client_cpu}
    print(
        f"CPU, less sensitive to other load than wall time (info): client ours / skopeo "
        f"{client_cpu['ours'] / client_cpu['skopeo']:.2f}; client + both registries ours / skopeo "
        f"{with_registries['ours'] / with_registries['skopeo']:.2f}. On 2 CPUs the copy is "
        "CPU-bound: wall >= (client + registries CPU) / 2."
    )
    print()
    digest_rows = []
    for kind, timed in by_kind.items():
        for t in timed:
            same = t.digest == image.digest
            digest_rows.append(
                [f"{kind} run {t.run}", t.digest, "kept" if same else "CHANGED", f"{t.layers_kept}/{len(image.layers)}"]
            )
            if t.pushed_digest and t.pushed_digest != t.digest:
                failures.append(f"docker push printed {t.pushed_digest}, the registry says {t.digest}")
            if kind != "docker" and not same:
                failures.append(f"{kind} run {t.run}: target digest {t.digest} is not {image.digest}")
    print(table(["target digest (skopeo inspect)", "digest", "vs source", "layer digests kept"], digest_rows))
    print(
        "docker's push recompresses every layer and writes a new manifest, so the promoted "
        "digest is not the one that was tested; copy_image and skopeo keep it."
    )
    for t in by_kind["ours"]:
        r = t.report
        assert r is not None
        print(
            f"ours run {t.run}: CopyReport blobs_copied={r.blobs_copied} bytes_copied={r.bytes_copied} "
            f"blobs_present={r.blobs_present} blobs_mounted={r.blobs_mounted} "
            f"manifests_copied={r.manifests_copied}"
        )
    print()

    sent = [(r.bytes_copied, r.blobs_copied) for r in again.reports]
    zero = all(b == 0 and n == 0 for b, n in sent) and all(r.manifests_present == 1 for r in again.reports)
    if again.digest != image.digest:
        failures.append(f"re-promoted tag points at {again.digest}, not {image.digest}")
    print(
        f"re-promotion (target holds every blob and the manifest; a new tag each time), "
        f"{len(again.reused_ms)} repetitions:"
    )
    print(
        table(
            ["re-promotion (ms)", *[f"#{i + 1}" for i in range(len(again.reused_ms))], "median"],
            [
                ["ours, clients reused", *again.reused_ms, median(again.reused_ms)],
                ["ours, two new clients", *again.fresh_clients_ms, median(again.fresh_clients_ms)],
                [
                    "skopeo copy (info)",
                    *again.skopeo_ms,
                    *[""] * (len(again.reused_ms) - len(again.skopeo_ms)),
                    median(again.skopeo_ms),
                ],
            ],
        )
    )
    print(
        f"bytes sent: {sorted({b for b, _ in sent})}, blobs copied: {sorted({n for _, n in sent})}, "
        f"manifests present: {sorted({r.manifests_present for r in again.reports})} "
        f"(first promotion: {again.first.blobs_copied} blobs, {again.first.bytes_copied / MB:.0f} MB)"
    )
    print()

    growth = (max(rss.peak_kb, rss.hwm_kb if rss.hwm_reset else 0) - rss.before_kb) / 1024
    big_mb = big.compressed_bytes / MB
    if rss.digest != big.digest:
        failures.append(f"1 GB copy: target digest {rss.digest} is not {big.digest}")
    print(
        f"RSS while copy_image copies {big.repo} ({'+'.join(map(str, big.layer_mb))} MB, "
        f"{big_mb:.0f} MB): before {rss.before_kb / 1024:.1f} MB, highest sampled "
        f"{rss.peak_kb / 1024:.1f} MB ({rss.samples} samples every 20 ms), kernel peak VmHWM "
        + (f"{rss.hwm_kb / 1024:.1f} MB (reset before the copy)" if rss.hwm_reset else "not resettable here (ignored)")
        + f"; growth {growth:.1f} MB"
    )
    print(
        f"  copy took {rss.seconds:.2f} s ({big_mb / rss.seconds:.0f} MB/s), skopeo the same copy "
        f"{rss.skopeo_seconds:.2f} s (ratio {rss.seconds / rss.skopeo_seconds:.2f}, info); "
        f"{rss.report.blobs_copied} blobs, {rss.report.bytes_copied / MB:.0f} MB sent; "
        f"target digest {'kept' if rss.digest == big.digest else 'CHANGED'}"
    )

    r_skopeo = median(secs["ours"]) / median(secs["skopeo"])
    r_docker = median(secs["ours"]) / median(secs["docker"])
    ms = median(again.reused_ms)
    r_crane = median(secs["ours"]) / median(secs["crane"])
    summary: list[list[object]] = [
        [
            f"copy {mb:.0f} MB on {where}: ours / skopeo copy",
            f"{r_skopeo:.3f}",
            f"<= {GOAL_SKOPEO}",
            verdict(r_skopeo <= GOAL_SKOPEO),
        ],
        [
            f"copy {mb:.0f} MB on {where}: ours / crane copy",
            f"{r_crane:.3f}",
            f"<= {GOAL_CRANE}",
            verdict(r_crane <= GOAL_CRANE),
        ],
        [
            f"copy {mb:.0f} MB: ours / docker pull+tag+push",
            f"{r_docker:.3f}",
            f"<= {GOAL_DOCKER}",
            verdict(r_docker <= GOAL_DOCKER),
        ],
        [
            "digest kept by ours (skopeo inspect)",
            "yes" if all(t.digest == image.digest for t in by_kind["ours"]) else "no",
            "yes",
            verdict(all(t.digest == image.digest for t in by_kind["ours"])),
        ],
        [
            "re-promotion: bytes / blobs sent",
            f"{max(b for b, _ in sent)} / {max(n for _, n in sent)}",
            "0 / 0",
            verdict(zero),
        ],
        [
            f"re-promotion wall ms (median of {len(again.reused_ms)})",
            f"{ms:.1f}",
            f"<= {GOAL_REPROMOTE_MS:.0f}",
            verdict(ms <= GOAL_REPROMOTE_MS),
        ],
        [
            f"RSS growth copying {big_mb:.0f} MB (MB)",
            f"{growth:.1f}",
            f"<= {GOAL_RSS_MB:.0f}",
            verdict(growth <= GOAL_RSS_MB),
        ],
    ]
    return summary, failures


# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 MB image, 200 MB for the RSS test, 1 run")
    parser.add_argument("--runs", type=int, help="runs of the copy comparison (default 3, quick 1)")
    parser.add_argument("--repeat", type=int, default=5, help="re-promotions (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--time-limit", type=float, help="seconds (default 900, quick 300)")
    parser.add_argument(
        "--registries",
        default="2,3",
        help="registry implementations, comma-separated: 2 (distribution 2.8), 3 (distribution 3)",
    )
    args = parser.parse_args(argv)
    implementations = [x.strip() for x in args.registries.split(",") if x.strip()]
    if not implementations or any(x not in IMPLEMENTATIONS for x in implementations):
        parser.error(f"--registries: choose from {', '.join(IMPLEMENTATIONS)}")
    for needed in [CRANE, *([REGISTRY3] if "3" in implementations else [])]:
        if not os.access(needed, os.X_OK):
            parser.error(f"{needed} is missing: run `bash scripts/install-go-tools.sh {needed.name}`")
    size = "quick" if args.quick else "full"
    runs = args.runs or (1 if args.quick else 3)
    limit = args.time_limit or (300.0 if args.quick else 900.0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops services

    print(f"before: {machine_load()}; {code_version()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-promote-", dir="/tmp"))
    (workdir / "home").mkdir()
    (workdir / "docker-config").mkdir()
    # No credentials from ~/.docker for the CLI or for RegistryClient: every registry is open.
    os.environ["DOCKER_CONFIG"] = str(workdir / "docker-config")
    bench = Bench(args, workdir)
    warm = Image("warmup", "bench/warmup", [2], seed=1)
    image = Image("app", REPO, SIZES[size]["image"], seed=2)
    big = Image("big", "bench/big", SIZES[size]["big"], seed=3)
    started = time.monotonic()
    try:
        with time_limit(limit):
            prepare(bench, [warm, image, big], implementations)
            others: dict[str, list[Timed]] = {}
            for implementation in implementations[1:]:  # copy ratios only; docker and the rest on the first
                bench.use(implementation)
                warm_up(bench, warm, docker=False)
                log(f"{IMPLEMENTATION_NAMES[implementation]}: warm-up done")
                others[implementation] = measure_copies(bench, image, runs, docker=False)
            bench.use(implementations[0])
            warm_up(bench, warm)
            log("warm-up done")
            copies = measure_copies(bench, image, runs)
            again = measure_repromotion(bench, image, args.repeat)
            log(f"re-promotion: median {median(again.reused_ms):.1f} ms")
            rss = measure_rss(bench, big)
            log(f"RSS test: {rss.seconds:.1f} s")
    except OutOfTime as exc:
        log(f"stopped: {exc}")
        return 3
    finally:
        for _, source_client in bench.sources.values():
            source_client.close()
        bench.stop_all()
        if args.keep:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    summary, failures = report(size, runs, image, big, copies, again, rss, IMPLEMENTATION_NAMES[implementations[0]])
    for implementation, timed in others.items():
        where = IMPLEMENTATION_NAMES[implementation]
        print()
        print(f"{where}: copy (s), each into a new empty {where} registry")
        rows = [
            [kind, *[t.seconds for t in timed if t.kind == kind], median([t.seconds for t in timed if t.kind == kind])]
            for kind in ("ours", "skopeo", "crane")
        ]
        print(table(["copy (s)", *[f"run {i}" for i in range(1, runs + 1)], "median"], rows))
        rows, failed = copy_ratios(timed, image, where)
        summary[2:2] = rows
        failures += failed
    print()
    print(table(["measurement", "value", "goal", ""], summary))
    print()
    print(f"after: {machine_load()}; {time.monotonic() - started:.0f} s in all")
    for failure in failures:
        print(f"CHECK FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
