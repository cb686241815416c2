"""Where the pinned Go tools live: built by ``scripts/install-go-tools.sh`` into a cache keyed
by version (buildkitd, buildctl, buildx, cosign 2 and 3, crane, distribution 3's registry).

A test that needs one calls ``tool("crane")``: a missing tool fails the test with the command
that installs it, never skips it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TOOLS_DIR = Path(os.environ.get("PIPELINE_TOOLS_DIR", "/var/cache/pipeline/tools"))
BUILDX_DOCKER_CONFIG = TOOLS_DIR / "docker-config"  # holds cli-plugins/docker-buildx


def tool(name: str) -> str:
    """Absolute path of a pinned tool by its stable name (``cosign2``, ``registry3``, …)."""
    path = TOOLS_DIR / "bin" / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: run `bash scripts/install-go-tools.sh {name}` first")
    return str(path.resolve())
