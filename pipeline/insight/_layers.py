"""The layer list ``docker image history`` shows, taken from the image config.

The config's ``history`` has one entry per Dockerfile step; steps that change no files (ENV,
USER, CMD...) are marked ``empty_layer`` and own no layer, every other entry owns the next
layer of ``rootfs.diff_ids``. History is optional metadata: layers it does not account for are
still listed, with an empty ``created_by``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.insight._model import LayerInfo

__all__ = ["layer_infos"]


def _entries(config: dict[str, Any], key: str, inner: str) -> list[Any]:
    section = config.get(key)
    values = section.get(inner) if isinstance(section, dict) else None
    return values if isinstance(values, list) else []


def layer_infos(config: dict[str, Any], sizes: Sequence[int]) -> list[LayerInfo]:
    """History entries oldest first, each non-empty one with its layer's digest and size."""
    history = config.get("history")
    history = history if isinstance(history, list) else []
    diff_ids = _entries(config, "rootfs", "diff_ids")
    layers: list[LayerInfo] = []
    index = 0
    for entry in history:
        entry = entry if isinstance(entry, dict) else {}
        created_by = str(entry.get("created_by") or "")
        if entry.get("empty_layer"):
            layers.append(LayerInfo(None, 0, created_by, True))
            continue
        digest = str(diff_ids[index]) if index < len(diff_ids) else None
        size = sizes[index] if index < len(sizes) else 0
        layers.append(LayerInfo(digest, size, created_by, False))
        index += 1
    for rest in range(index, len(sizes)):
        digest = str(diff_ids[rest]) if rest < len(diff_ids) else None
        layers.append(LayerInfo(digest, sizes[rest], "", False))
    return layers
