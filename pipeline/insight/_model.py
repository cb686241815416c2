"""The facts one build's image insight records, and their JSON form.

``to_dict`` is what the service stores and serves; ``from_dict`` reads it back so that a build
can be compared with a previous one that only exists as stored JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Advice", "ImageInsight", "LayerInfo", "WastedFile"]


@dataclass(frozen=True)
class LayerInfo:
    """One history entry of the image, oldest first (``docker image history`` lists newest first).

    ``digest`` is the layer's diff ID (uncompressed sha256) and ``size`` the sum of its tar
    entries' sizes; both are None/0 for ``empty`` entries (ENV, USER, CMD ... add no layer)."""

    digest: str | None
    size: int
    created_by: str
    empty: bool


@dataclass(frozen=True)
class WastedFile:
    """A path stored more than once across layers; ``wasted_bytes`` counts every copy (dive)."""

    path: str
    count: int
    wasted_bytes: int


@dataclass(frozen=True)
class Advice:
    """One Dockerfile finding: from ``hadolint`` or from the ``pipeline``'s own rules."""

    source: str  # "hadolint" | "pipeline"
    code: str
    level: str  # "error" | "warning" | "info" | "style"
    line: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "code": self.code,
            "level": self.level,
            "line": self.line,
            "message": self.message,
        }


def _finite(value: float) -> float | None:
    """JSON has no NaN/Infinity; dive reports NaN user waste for a single-layer image."""
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class ImageInsight:
    """Size, layers and waste of one image, with dive's definitions.

    ``efficiency`` and ``user_wasted_percent`` are ratios (0.0-1.0), exactly the values dive
    compares with its ``lowestEfficiency`` / ``highestUserWastedPercent`` thresholds (its
    report prints them times 100). ``user_wasted_percent`` is wasted bytes over the bytes of
    every layer but the first (the base); NaN when there is no such byte, as in dive.
    ``wasted_files`` holds the top 20 in dive's order."""

    size: int
    layers: list[LayerInfo]
    wasted_bytes: int
    efficiency: float
    user_wasted_percent: float
    wasted_files: list[WastedFile] = field(default_factory=list)

    @property
    def layer_count(self) -> int:
        """Filesystem layers (history entries that are not empty)."""
        return sum(1 for layer in self.layers if not layer.empty)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (non-finite ratios become null)."""
        return {
            "size": self.size,
            "layer_count": self.layer_count,
            "wasted_bytes": self.wasted_bytes,
            "efficiency": _finite(self.efficiency),
            "user_wasted_percent": _finite(self.user_wasted_percent),
            "layers": [
                {"digest": x.digest, "size": x.size, "created_by": x.created_by, "empty": x.empty} for x in self.layers
            ],
            "wasted_files": [
                {"path": x.path, "count": x.count, "wasted_bytes": x.wasted_bytes} for x in self.wasted_files
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageInsight:
        """Read back ``to_dict`` output (null ratios become NaN); KeyError/TypeError if not."""
        ratio = data.get("user_wasted_percent")
        efficiency = data.get("efficiency")
        return cls(
            size=int(data["size"]),
            layers=[
                LayerInfo(x.get("digest"), int(x["size"]), str(x["created_by"]), bool(x["empty"]))
                for x in data.get("layers", [])
            ],
            wasted_bytes=int(data["wasted_bytes"]),
            efficiency=math.nan if efficiency is None else float(efficiency),
            user_wasted_percent=math.nan if ratio is None else float(ratio),
            wasted_files=[
                WastedFile(str(x["path"]), int(x["count"]), int(x["wasted_bytes"]))
                for x in data.get("wasted_files", [])
            ],
        )
