"""Image insight for one build: save the image from the engine, read the archive, score it.

The archive goes to a scratch directory the worker owns and is deleted whatever happens; it is
the only thing written to disk (layer contents are streamed and skipped, never unpacked).
"""

from __future__ import annotations

import math
import secrets
import subprocess
from pathlib import Path

from pipeline.errors import BuildError
from pipeline.insight._archive import read_archive
from pipeline.insight._efficiency import efficiency
from pipeline.insight._layers import layer_infos
from pipeline.insight._model import ImageInsight, WastedFile

__all__ = ["TOP_WASTED_FILES", "analyze_archive", "save_and_analyze"]

TOP_WASTED_FILES = 20
_STDERR_TAIL = 2000


def _ratio(wasted: int, user_bytes: int) -> float:
    """Go's float64 division, including what it gives for a zero denominator."""
    if user_bytes == 0:
        return math.nan if wasted == 0 else math.inf
    return float(wasted) / float(user_bytes)


def _printable(path: str) -> str:
    """Non-UTF-8 names become U+FFFD, as Go's JSON encoder (and so dive) prints them."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def analyze_archive(tar_path: Path) -> ImageInsight:
    """Insight for the image in a ``docker save`` archive; BuildError if it is unreadable."""
    archive = read_archive(tar_path)
    result = efficiency(archive.trees)
    wasted = [WastedFile(_printable(r.path), r.count, r.cumulative) for r in result.inefficient[:TOP_WASTED_FILES]]
    return ImageInsight(
        size=sum(archive.sizes),
        layers=layer_infos(archive.config, archive.sizes),
        wasted_bytes=result.wasted_bytes,
        efficiency=result.score,
        user_wasted_percent=_ratio(result.wasted_bytes, sum(archive.dive_sizes[1:])),
        wasted_files=wasted,
    )


def _docker_save(docker_cmd: list[str], image: str, tar_path: Path, timeout: float) -> None:
    args = [*docker_cmd, "save", "-o", str(tar_path), "--", image]
    try:
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except OSError as exc:
        raise BuildError(f"cannot run {docker_cmd[0]!r} to save image {image} for analysis: {exc}") from None
    except subprocess.TimeoutExpired:
        raise BuildError(
            f"`docker save {image}` did not finish within {timeout:.0f} s; "
            "the engine may be overloaded or the image very large"
        ) from None
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace").strip()[-_STDERR_TAIL:]
        raise BuildError(
            f"`docker save {image}` failed with exit code {proc.returncode}: "
            f"{stderr or '(no output)'}. Check that the image exists on the "
            f"engine and that {tar_path.parent} is writable and has room for it."
        )


def save_and_analyze(docker_cmd: list[str], image: str, scratch: Path, *, timeout: float = 1800.0) -> ImageInsight:
    """``docker save`` ``image`` into ``scratch``, analyze it, delete the archive.

    ``docker_cmd`` is the engine's client command as an argument list (e.g.
    ``["/usr/bin/docker", "--host", HOST]``); the archive name is unique so that workers may
    share a scratch directory."""
    tar_path = scratch / f"insight-{secrets.token_hex(8)}.tar"
    try:
        scratch.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(
            f"cannot create scratch directory {scratch} for the image archive: {exc.strerror or exc}"
        ) from None
    try:
        _docker_save(docker_cmd, image, tar_path, timeout)
        return analyze_archive(tar_path)
    finally:
        tar_path.unlink(missing_ok=True)
