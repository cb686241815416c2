"""The build's provenance as a signed attestation: the in-toto statement in a DSSE envelope,
appended to the digest's ``.att`` beside what is there, the way cosign lays it out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.errors import NotFound
from pipeline.registry import RegistryClient, update_artifact
from pipeline.signing._attestation import (
    DSSE_MEDIA_TYPE,
    append_attestation,
    attestation_tag,
    dsse_envelope,
    statement_bytes,
    verify_envelope,
)
from pipeline.types import content_digest

__all__ = ["attach_provenance"]


def _dsse_layers(raw: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(raw)
    except ValueError:
        return []  # append_attestation refuses it with a clear message
    layers = data.get("layers") if isinstance(data, dict) else None
    return [layer for layer in layers or [] if isinstance(layer, dict) and layer.get("mediaType") == DSSE_MEDIA_TYPE]


def attach_provenance(
    client: RegistryClient,
    repository: str,
    digest: str,
    statement: dict[str, Any],
    key: ec.EllipticCurvePrivateKey,
    data_dir: Path,
) -> str:
    """Sign the statement and append it to the digest's ``.att`` in ``repository``.

    The same read-modify-write (lock per tag under ``data_dir``, read back) as promotion
    signing. A retried build whose signed statement is already there writes nothing. Registry
    errors propagate.
    """
    tag = attestation_tag(digest)
    envelope = dsse_envelope(statement, key)
    layer_digest = content_digest(envelope)
    payload, public = statement_bytes(statement), key.public_key()

    def ours(raw: bytes) -> bool:
        """A layer whose envelope our key signed over this very statement."""
        for layer in _dsse_layers(raw):
            if layer.get("digest") == layer_digest:
                return True
            try:
                blob = client.read_blob(repository, str(layer.get("digest")))
            except NotFound:
                continue
            found = verify_envelope(blob, [public])
            if found is not None and statement_bytes(found) == payload:
                return True
        return False

    def change(existing: bytes | None) -> tuple[bytes | None, list[tuple[str, bytes]]]:
        if existing is not None and ours(existing):
            return None, []
        update = append_attestation(existing, envelope)
        if not update.changed:
            return None, []
        return update.manifest, [(blob.digest, blob.data) for blob in update.uploads]

    def present(raw: bytes) -> bool:
        return any(layer.get("digest") == layer_digest for layer in _dsse_layers(raw))

    wrote = update_artifact(data_dir, client, repository, tag, change, present)
    where = f"{client.host}/{repository}:{tag}"
    return f"provenance signed into {where}" if wrote else f"provenance already in {where}"
