"""The service's own disk: old build logs archived or deleted, builder caches pruned, and the
data directory's size by part (for ``/metrics``).

Work directories need no duty here: a build removes its own in a ``finally`` whatever the
outcome (``pipeline.build``), and one left by a killed worker is removed when the build is
taken again; ``git gc`` of the mirrors is in ``_history``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import BuilderConfig, Config, LogRetention
from pipeline.store import Database, retention, utcnow

__all__ = ["LogsRetained", "data_dir_sizes", "prune_builders", "retain_logs"]

log = logging.getLogger(__name__)
_PARTS = ("mirrors", "work", "logs", "buildx", "locks")


@dataclass(frozen=True)
class LogsRetained:
    builds: int
    lines: int
    action: str


def retain_logs(db: Database, config: Config, policy: LogRetention, *, batch: int = 200) -> LogsRetained:
    """Logs of builds older than ``policy.keep_days``: gzip-archived under ``data_dir/logs``
    (then one line in the database says where) or deleted; the build rows stay."""
    cutoff = utcnow() - dt.timedelta(days=policy.keep_days)
    directory = config.data_dir / "logs"
    builds = lines = 0
    while True:
        with db.session() as session:
            ids = retention.logs_before(session, cutoff, limit=batch)
        if not ids:
            break
        for build_id in ids:
            lines += _retain_one(db, build_id, directory, policy.action)
            builds += 1
        if len(ids) < batch:
            break
    if builds:
        log.info("build logs: %s of %s builds (%s lines)", policy.action, builds, lines)
    return LogsRetained(builds, lines, policy.action)


def _retain_one(db: Database, build_id: int, directory: Path, action: str) -> int:
    archive = directory / f"build-{build_id}.log.gz"
    when = f"{utcnow():%Y-%m-%d %H:%M} UTC"
    mark = f"log archived to {archive} on {when}" if action == "archive" else f"log deleted by retention on {when}"
    with db.session() as session:
        old = retention.replace_logs(session, build_id, mark)
        if action == "archive":  # written before the rows go: a failed write rolls their removal back
            directory.mkdir(parents=True, exist_ok=True)
            partial = archive.with_suffix(".partial")
            with gzip.open(partial, "wt", encoding="utf-8") as out:
                out.writelines(line + "\n" for line in old)
            os.replace(partial, archive)
    return len(old)


def _run(argv: list[str], what: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{what}: {exc}"
    tail = (done.stdout.strip().splitlines() or [""])[-1]
    return f"{what}: {tail}" if done.returncode == 0 else f"{what}: failed: {done.stderr.strip()[-300:]}"


def _docker_prune(config: Config, builder: BuilderConfig, seconds: int) -> str:
    host = [] if builder.docker in (None, "default") else ["--host", str(builder.docker)]
    cli = config.docker.cli or "docker"
    argv = [cli, *host, "image", "prune", "--force", "--filter", f"until={seconds}s"]
    return _run(argv, f"builder {builder.name}: docker image prune")


def _buildkit_prune(builder: BuilderConfig, keep: int) -> str:
    tls = []
    for flag, path in (
        ("--tlscacert", builder.ca_file),
        ("--tlscert", builder.cert_file),
        ("--tlskey", builder.key_file),
    ):
        if path is not None:
            tls += [flag, str(path)]
    buildctl = shutil.which("buildctl") or "buildctl"
    argv = [buildctl, "--addr", str(builder.buildkit), *tls, "prune", "--keep-storage", str(max(keep >> 20, 1))]
    return _run(argv, f"builder {builder.name}: buildctl prune")


def prune_builders(config: Config) -> list[str]:
    """What each configured prune did, one line per builder (nothing when none is configured)."""
    prune, said = config.cleanup.prune, []
    for builder in config.builder_pool:
        if builder.kind == "docker" and prune.docker_images_older_than is not None:
            said.append(_docker_prune(config, builder, prune.docker_images_older_than))
        elif builder.kind == "buildkit" and prune.buildkit_keep_storage is not None:
            said.append(_buildkit_prune(builder, prune.buildkit_keep_storage))
    for line in said:
        log.info("%s", line)
    return said


def _size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path, onerror=lambda _: None):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue  # removed while we walked
    return total


_cache: dict[Path, tuple[float, dict[str, int]]] = {}
_cache_lock = threading.Lock()


def data_dir_sizes(data_dir: Path, max_age: float = 60.0) -> dict[str, int]:
    """Bytes under the data directory by part (``mirrors``, ``work``, ``logs``, ``buildx``,
    ``locks``, ``database`` for SQLite files, ``other``) and ``total``. Walking big mirrors
    takes a while, so a scrape gets an answer at most ``max_age`` seconds old."""
    with _cache_lock:
        cached = _cache.get(data_dir)
        if cached is not None and time.monotonic() - cached[0] < max_age:
            return cached[1]
    sizes = {part: _size(data_dir / part) for part in _PARTS}
    total = _size(data_dir)
    sizes["database"] = sum(_size(p) for p in data_dir.glob("*.db*")) if data_dir.is_dir() else 0
    sizes["other"] = max(total - sum(sizes.values()), 0)
    sizes["total"] = total
    with _cache_lock:
        _cache[data_dir] = (time.monotonic(), sizes)
    return sizes
