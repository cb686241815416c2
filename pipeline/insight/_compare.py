"""How a build's image changed since the previous build of the same project.

Pure: it takes two insights (the previous one typically read back from stored JSON) and
returns JSON-safe deltas, current minus previous. A previous insight stored by an older
version of this code may lack a field; that metric's delta is then None rather than an error,
so a comparison never fails a build.
"""

from __future__ import annotations

import math
from typing import Any

from pipeline.insight._model import ImageInsight

__all__ = ["compare"]

_METRICS = ("size", "wasted_bytes", "efficiency", "user_wasted_percent", "layer_count")


def _number(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def _summary(data: dict[str, Any]) -> dict[str, float | None]:
    return {key: _number(data, key) for key in _METRICS}


def _delta(old: float | None, new: float | None) -> float | None:
    return None if old is None or new is None else new - old


def compare(previous: ImageInsight | dict[str, Any] | None, current: ImageInsight) -> dict[str, Any]:
    """Both summaries and the deltas of size, wasted bytes, efficiency, user waste and layer
    count (``<metric>_delta``); every delta is None without a previous insight."""
    before = previous.to_dict() if isinstance(previous, ImageInsight) else previous
    old = _summary(before) if isinstance(before, dict) else None
    new = _summary(current.to_dict())
    result: dict[str, Any] = {"previous": old, "current": new}
    for key in _METRICS:
        result[f"{key}_delta"] = _delta(old[key] if old else None, new[key])
    return result
