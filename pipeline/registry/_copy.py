"""Registry-to-registry copy by digest: the exact bytes, no daemon, nothing sent twice.

``docker pull`` + ``tag`` + ``push`` recompresses layers and changes the digest; here the
manifest bytes are copied as they are and every blob is streamed from one registry into the
other, so the digest in the target is the source's by construction (and checked).

The order keeps the target consistent at every instant: blobs first, then child manifests
of an index, then the manifest by digest, and only then the tags. A tag therefore never
points at anything incomplete, whatever fails on the way.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import PipelineError, RegistryError
from pipeline.registry._client import Manifest, RegistryClient

__all__ = ["CopyReport", "copy_image"]

log = logging.getLogger(__name__)

_FOREIGN = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
)


@dataclass
class CopyReport:
    """What a copy did, for the promotion record and the benchmarks."""

    digest: str
    manifests_copied: int = 0
    manifests_present: int = 0
    blobs_present: int = 0
    blobs_mounted: int = 0
    blobs_copied: int = 0
    bytes_copied: int = 0
    tags: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


@dataclass(frozen=True)
class _Route:
    source: RegistryClient
    source_repo: str
    target: RegistryClient
    target_repo: str
    attempts: int
    parallel: int

    @property
    def same_registry(self) -> bool:
        return self.source.host == self.target.host


def copy_image(
    source: RegistryClient,
    source_repo: str,
    target: RegistryClient,
    target_repo: str,
    digest: str,
    *,
    tags: Sequence[str] = (),
    parallel: int = 4,
    attempts: int = 4,
) -> CopyReport:
    """Make ``target_repo@digest`` exist with the source's exact bytes, then point ``tags`` at it."""
    route = _Route(source, source_repo, target, target_repo, attempts, parallel)
    report = CopyReport(digest)
    manifest = source.manifest(source_repo, digest)
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="blob-copy") as pool:
        _copy_manifest(route, manifest, report, pool)
    for tag in tags:
        target.tag(target_repo, tag, manifest)
        report.tags.append(tag)
    return report


def _copy_manifest(route: _Route, manifest: Manifest, report: CopyReport, pool: ThreadPoolExecutor) -> None:
    if route.target.find_manifest(route.target_repo, manifest.digest) is not None:
        report.add(manifests_present=1)  # a registry only accepts a manifest whose parts it holds
        return
    if manifest.is_index:
        for child in manifest.children():
            _copy_manifest(route, route.source.manifest(route.source_repo, str(child["digest"])), report, pool)
    else:
        blobs = {
            str(b["digest"]): int(b.get("size") or 0) for b in manifest.blobs() if b.get("mediaType") not in _FOREIGN
        }
        # largest first: the biggest layer is the copy's critical path, so it must not wait for a thread
        ordered = sorted(blobs.items(), key=lambda item: -item[1])
        for future in [pool.submit(_copy_blob, route, d, size, report) for d, size in ordered]:
            future.result()
    route.target.put_manifest(route.target_repo, manifest.digest, manifest)
    report.add(manifests_copied=1)


def _copy_blob(route: _Route, digest: str, size: int, report: CopyReport) -> None:
    target, repo = route.target, route.target_repo
    if target.blob_exists(repo, digest):
        report.add(blobs_present=1)
        return
    location = None
    if route.same_registry and route.source_repo != repo:
        location = target.start_upload(repo, mount=digest, mount_from=route.source_repo)
        if location is None:
            report.add(blobs_mounted=1)
            return
    _with_retries(
        route.attempts, lambda: _stream_blob(route, digest, size, location), lambda: target.blob_exists(repo, digest)
    )
    report.add(blobs_copied=1, bytes_copied=size)


def _stream_blob(route: _Route, digest: str, size: int, location: str | None) -> None:
    with route.source.open_blob(route.source_repo, digest) as (found_size, chunks):
        if found_size not in (-1, size):
            raise RegistryError(
                f"{route.source.host}/{route.source_repo}@{digest} is {found_size} bytes, the manifest says {size}"
            )
        with _read_ahead(chunks) as ahead:
            route.target.upload_blob(route.target_repo, digest, size, ahead, location=location)


_DONE = object()


@contextmanager
def _read_ahead(chunks: Iterator[bytes], depth: int = 2) -> Iterator[Iterator[bytes]]:
    """The source's chunks, read by a thread of their own up to ``depth`` chunks ahead.

    Receiving from the source and hashing + sending to the target then overlap (the socket
    calls and the hash run without the GIL) instead of taking turns, which on the copy of one
    large layer is most of the difference to a Go client. At most ``depth + 2`` chunks of one
    blob are in memory. A failure on either side ends both: the reader's error is raised
    where the chunk it could not read was expected, and a consumer that stops (the target
    refused, the digest was wrong) makes the reader stop after the chunk it is reading.
    """
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def read() -> None:
        item: object = _DONE
        try:
            for chunk in chunks:
                handoff.put(chunk)
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            item = exc
        handoff.put(item)

    def consume() -> Iterator[bytes]:
        while (item := handoff.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]

    reader = threading.Thread(target=read, name=f"{threading.current_thread().name}-read", daemon=True)
    reader.start()
    try:
        yield consume()
    finally:
        stop.set()
        while reader.is_alive():  # free a reader blocked on a full queue, then let it end
            try:
                while True:
                    handoff.get_nowait()
            except queue.Empty:
                pass
            reader.join(0.01)


def _with_retries(attempts: int, work: Callable[[], None], done: Callable[[], bool]) -> None:
    """A streamed upload cannot be replayed by the transport; retry it whole, unless a failed
    attempt in fact landed (the connection broke after the registry committed the blob)."""
    for attempt in range(attempts):
        try:
            work()
            return
        except PipelineError as exc:
            if not exc.retryable or attempt == attempts - 1:
                raise
            delay = random.uniform(0.5, 1.0) * min(8.0, 0.3 * 2**attempt)
            log.warning("copy: %s; upload %d of %d again in %.1f s", exc.message, attempt + 2, attempts, delay)
        time.sleep(delay)
        try:
            if done():
                return
        except PipelineError as exc:
            if not exc.retryable:
                raise
