"""What the signature steps share: reading the layers of a cosign ``.sig`` manifest.

Signatures come in two layouts: the ``sha256-<hex>.sig`` tag (cosign 2, and what we write) and
cosign 3's sigstore bundles, stored as OCI referrers of the digest (the referrers API, or the
``sha256-<hex>`` fallback index on registries without it). Both are verified and carried.

The ``.sig`` image of a digest is a tag anyone may rewrite, so every change is a
read-modify-write: fetch, append, upload, PUT, then read back and check the layer is there,
again if a concurrent signer overwrote it. Signers on one host are serialized by a file lock in
the data dir; between hosts the read-back narrows the race but cannot close it (the registry
has no compare-and-swap), see ``pipeline.registry.update_artifact``.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.errors import PolicyViolation
from pipeline.signing import SIGNATURE_ANNOTATION

__all__ = ["SignatureRefused", "has_layer", "layers", "short", "signature_of"]


class SignatureRefused(PolicyViolation):
    """The environment demands a signature the source does not carry: the promotion is rejected."""


def layers(raw: bytes) -> list[dict[str, Any]]:
    """The layer descriptors of a manifest; none when it is not one."""
    try:
        data = json.loads(raw)
    except ValueError:
        return []
    found = data.get("layers") if isinstance(data, dict) else None
    return [layer for layer in found or [] if isinstance(layer, dict)]


def signature_of(layer: dict[str, Any]) -> str | None:
    annotations = layer.get("annotations")
    value = annotations.get(SIGNATURE_ANNOTATION) if isinstance(annotations, dict) else None
    return value if isinstance(value, str) else None


def has_layer(raw: bytes, digest: str, signature: str) -> bool:
    return any(layer.get("digest") == digest and signature_of(layer) == signature for layer in layers(raw))


def short(digest: str) -> str:
    return digest[:19] + "…" if len(digest) > 19 else digest
