"""The ``sha256-<hex>.sig`` image that carries cosign signatures, as pure bytes in and out.

No registry I/O here: the caller fetches the existing manifest (``None`` on 404), uploads the
blobs listed in the result, then PUTs the manifest on the same tag. Two signers appending at
once would each drop the other's layer, so the caller serializes signing per image.

The bytes follow go-containerregistry's structs (cosign builds the image with it) so that a
signature manifest we write has the digest cosign would give it for the same layers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.errors import SigningError
from pipeline.signing._payload import go_json, parse_payload, validate_digest, verify_payload
from pipeline.types import content_digest, is_digest

__all__ = [
    "CONFIG_MEDIA_TYPE",
    "MANIFEST_MEDIA_TYPE",
    "SIGNATURE_ANNOTATION",
    "SIMPLESIGNING_MEDIA_TYPE",
    "Blob",
    "SignatureManifestUpdate",
    "VerifiedSignature",
    "append_signature",
    "signature_config",
    "signature_tag",
    "verify_signature_manifest",
]

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
_MANIFEST_TYPES = (MANIFEST_MEDIA_TYPE, "application/vnd.docker.distribution.manifest.v2+json")
_ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time: cosign leaves "created" unset
# go-containerregistry's v1.Descriptor fields in declaration order (the optional ones are
# omitempty); anything else is dropped, as cosign drops it.
_DESCRIPTOR_REQUIRED = ("mediaType", "size", "digest")
_DESCRIPTOR_OPTIONAL = ("data", "urls", "annotations", "platform", "artifactType")


@dataclass(frozen=True)
class Blob:
    """A blob to upload before the manifest that references it."""

    digest: str
    data: bytes


@dataclass(frozen=True)
class SignatureManifestUpdate:
    """What to push for one more signature.

    ``changed`` is False when the same payload and signature are already there: then nothing
    needs pushing, ``manifest`` is the existing bytes unchanged and ``config`` is None.
    Otherwise upload every blob in ``uploads`` (the new config and the new payload layer;
    existing layers are already in the repository), then PUT ``manifest`` with Content-Type
    ``media_type`` on the ``.sig`` tag.
    """

    manifest: bytes
    config: bytes | None
    uploads: tuple[Blob, ...]
    changed: bool
    media_type: str = MANIFEST_MEDIA_TYPE


@dataclass(frozen=True)
class VerifiedSignature:
    """One layer that passed: its position, digest, the index of the key that verified it."""

    layer_index: int
    layer_digest: str
    key_index: int
    payload: dict[str, Any]


def signature_tag(digest: str) -> str:
    """The tag cosign looks under: the image digest with ':' made '-', plus ``.sig``."""
    return validate_digest(digest).replace(":", "-", 1) + ".sig"


def signature_config(layer_digests: Sequence[str]) -> bytes:
    """The config blob: valid image config JSON so cosign (and ggcr) can append to the image.

    Layers are uncompressed, so each diff_id is the layer's own digest. Field order is
    go-containerregistry's ``ConfigFile``; times are Go's zero time as cosign leaves them.
    """
    return go_json(
        {
            "architecture": "",
            "created": _ZERO_TIME,
            "history": [{"created": _ZERO_TIME} for _ in layer_digests],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": list(layer_digests)},
            "config": {},
        }
    )


def _descriptor(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A descriptor in Go field order, with annotation keys sorted as Go sorts map keys."""
    out = {field: raw[field] for field in _DESCRIPTOR_REQUIRED if field in raw}
    out.update((field, raw[field]) for field in _DESCRIPTOR_OPTIONAL if raw.get(field))
    if isinstance(out.get("annotations"), dict):
        out["annotations"] = {key: out["annotations"][key] for key in sorted(out["annotations"])}
    return out


def _layer(payload: bytes, signature_b64: str) -> dict[str, Any]:
    return {
        "mediaType": SIMPLESIGNING_MEDIA_TYPE,
        "size": len(payload),
        "digest": content_digest(payload),
        "annotations": {SIGNATURE_ANNOTATION: signature_b64},
    }


def _manifest(config: bytes, layers: Sequence[Mapping[str, Any]], extra: Mapping[str, Any]) -> bytes:
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "size": len(config), "digest": content_digest(config)},
        "layers": [_descriptor(layer) for layer in layers],
    }
    if isinstance(extra.get("annotations"), dict) and extra["annotations"]:
        manifest["annotations"] = {k: extra["annotations"][k] for k in sorted(extra["annotations"])}
    if isinstance(extra.get("subject"), dict):
        manifest["subject"] = _descriptor(extra["subject"])
    return go_json(manifest)


def _parse_manifest(manifest_bytes: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(manifest_bytes)
    except ValueError:
        raise SigningError(f"{what} is not JSON; delete the .sig tag or fix it before signing again") from None
    if not isinstance(data, dict) or not isinstance(data.get("layers", []), list):
        raise SigningError(f"{what} is not an image manifest (no layer list)")
    if data.get("mediaType", MANIFEST_MEDIA_TYPE) not in _MANIFEST_TYPES:
        raise SigningError(f"{what} has media type {data.get('mediaType')!r}, not an image manifest")
    return data


def _checked_layer(layer: Any, what: str) -> dict[str, Any]:
    if not (
        isinstance(layer, dict)
        and isinstance(layer.get("mediaType"), str)
        and isinstance(layer.get("size"), int)
        and isinstance(layer.get("digest"), str)
        and is_digest(layer["digest"])
    ):
        raise SigningError(f"{what} has a layer that is not a sha256 descriptor: {layer!r}")
    return layer


def _signature_of(layer: Mapping[str, Any]) -> str | None:
    annotations = layer.get("annotations")
    value = annotations.get(SIGNATURE_ANNOTATION) if isinstance(annotations, dict) else None
    return value if isinstance(value, str) else None


def _already_signed(layers: Sequence[Mapping[str, Any]], digest: str, signature_b64: str) -> bool:
    return any(layer["digest"] == digest and _signature_of(layer) == signature_b64 for layer in layers)


def append_signature(existing_manifest: bytes | None, payload: bytes, signature_b64: str) -> SignatureManifestUpdate:
    """Add one signature layer to the ``.sig`` image (``None``: there is none yet).

    Existing layers are kept as they are, so signatures by other keys survive. Their payload
    bytes are not needed: a layer is identified by its descriptor digest and signature
    annotation, and an uncompressed layer's diff_id is that same digest.
    """
    parse_payload(payload)  # a layer cosign cannot read would sit in the registry forever
    what = "the existing signature manifest"
    data = {} if existing_manifest is None else _parse_manifest(existing_manifest, what)
    layers = [_checked_layer(layer, what) for layer in data.get("layers", [])]
    new_layer = _layer(payload, signature_b64)
    if existing_manifest is not None and _already_signed(layers, new_layer["digest"], signature_b64):
        return SignatureManifestUpdate(manifest=existing_manifest, config=None, uploads=(), changed=False)
    layers.append(new_layer)
    config = signature_config([layer["digest"] for layer in layers])
    manifest = _manifest(config, layers, data)
    uploads = (Blob(content_digest(config), config), Blob(new_layer["digest"], payload))
    return SignatureManifestUpdate(manifest=manifest, config=config, uploads=uploads, changed=True)


def _layer_payload(layer: Any, fetch_blob: Callable[[str], bytes]) -> bytes | None:
    """The layer's payload, only if its bytes are the ones the descriptor names."""
    if not isinstance(layer, dict) or not isinstance(layer.get("digest"), str):
        return None
    if not is_digest(layer["digest"]):
        return None
    payload = fetch_blob(layer["digest"])
    if content_digest(payload) != layer["digest"]:
        return None
    if isinstance(layer.get("size"), int) and layer["size"] != len(payload):
        return None
    return payload


def _claims_match(parsed: Mapping[str, Any], image_digest: str, required: Mapping[str, str]) -> bool:
    claimed = parsed["critical"]["image"]["docker-manifest-digest"]
    optional = parsed.get("optional") or {}
    return claimed == image_digest and all(optional.get(k) == v for k, v in required.items())


def _verify_layer(
    layer: Any,
    fetch_blob: Callable[[str], bytes],
    image_digest: str,
    public_keys: Sequence[ec.EllipticCurvePublicKey],
    required: Mapping[str, str],
) -> tuple[int, dict[str, Any]] | None:
    signature = _signature_of(layer) if isinstance(layer, dict) else None
    payload = _layer_payload(layer, fetch_blob) if signature is not None else None
    if payload is None or signature is None:
        return None
    key_index = next((i for i, key in enumerate(public_keys) if verify_payload(key, payload, signature)), None)
    if key_index is None:
        return None
    try:
        parsed = parse_payload(payload)
    except SigningError:
        return None
    return (key_index, parsed) if _claims_match(parsed, image_digest, required) else None


def verify_signature_manifest(
    manifest_bytes: bytes,
    fetch_blob: Callable[[str], bytes],
    image_digest: str,
    public_keys: Sequence[ec.EllipticCurvePublicKey],
    required_annotations: Mapping[str, str] | None = None,
) -> list[VerifiedSignature]:
    """Every layer that verifies, as ``cosign verify --key`` judges them; empty: none does.

    A layer passes when its payload hashes to its descriptor, a key verifies its signature over
    those bytes, the payload claims exactly ``image_digest`` and carries every required
    annotation. One passing layer is enough for the image; the list says which key it was.
    Errors from ``fetch_blob`` (the registry) propagate: "could not look" is not "unsigned".
    """
    validate_digest(image_digest)
    data = _parse_manifest(manifest_bytes, "the signature manifest")
    required = dict(required_annotations or {})
    verified = []
    for index, layer in enumerate(data.get("layers", [])):
        result = _verify_layer(layer, fetch_blob, image_digest, public_keys, required)
        if result is not None:
            verified.append(VerifiedSignature(index, layer["digest"], result[0], result[1]))
    return verified
