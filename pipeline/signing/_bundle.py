"""Cosign 3's signatures: a Sigstore bundle stored as an OCI referrer of the image.

``cosign sign`` 3.x (the default ``--new-bundle-format``) no longer appends to the
``sha256-<hex>.sig`` tag. It pushes an image manifest with ``artifactType``
:data:`BUNDLE_MEDIA_TYPE`, ``subject`` = the signed image, an empty config and one layer: the
bundle JSON. With a key, the bundle's ``dsseEnvelope`` holds an in-toto statement whose subject
is the image digest (cosign's ``-a`` annotations ride on that subject) and whose predicate type
is :data:`COSIGN_SIGN_PREDICATE`; the signature covers the DSSE pre-authentication encoding, as
for attestations. A registry without the referrers API (distribution 2.8 and 3.1 both) is
given the referrer through the OCI 1.1 fallback: an image index under the tag ``sha256-<hex>``
listing every referrer's descriptor.

Pure bytes in, answers out: the registry side lives in ``pipeline.registry`` and the promotion
steps. Offline, as with ``cosign verify --insecure-ignore-tlog=true``: transparency-log entries
in a bundle are neither required nor checked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.signing._attestation import INTOTO_PAYLOAD_TYPE, dsse_pae, parse_envelope
from pipeline.signing._payload import go_json, validate_digest, verify_payload

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "BUNDLE_MEDIA_TYPES",
    "COSIGN_SIGN_PREDICATE",
    "REFERRERS_INDEX_MEDIA_TYPE",
    "BundleCheck",
    "bundle_layer",
    "check_bundle",
    "merge_referrers_index",
    "referrers_tag",
]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
# Older writers (cosign 2's --new-bundle-format, sigstore-go) name the version as a parameter.
BUNDLE_MEDIA_TYPES = (
    BUNDLE_MEDIA_TYPE,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
)
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
REFERRERS_INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
_STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")


def referrers_tag(digest: str) -> str:
    """The OCI 1.1 referrers fallback tag: the subject's digest with ':' made '-'."""
    return validate_digest(digest).replace(":", "-", 1)


def bundle_layer(manifest_bytes: bytes) -> dict[str, Any] | None:
    """The bundle layer's descriptor of a referrer manifest; None if it is no sigstore bundle."""
    try:
        data = json.loads(manifest_bytes)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    layers = [layer for layer in data.get("layers") or [] if isinstance(layer, dict)]
    kinds = {data.get("artifactType"), *(layer.get("mediaType") for layer in layers)}
    if not kinds & set(BUNDLE_MEDIA_TYPES):
        return None
    return next((layer for layer in layers if layer.get("mediaType") in BUNDLE_MEDIA_TYPES), None)


@dataclass(frozen=True)
class BundleCheck:
    """The verdict on one bundle: ``key_index`` of the key that verified it (None: refused, with
    ``reason`` in words), and the signed statement once the signature held."""

    key_index: int | None
    reason: str
    statement: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.key_index is not None


def _statement(payload: bytes) -> dict[str, Any] | None:
    try:
        statement = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(statement, dict) or statement.get("_type") not in _STATEMENT_TYPES:
        return None
    return statement


def _subject_annotations(statement: Mapping[str, Any], hex_digest: str) -> dict[str, Any] | None:
    """The annotations of the subject naming the digest ({} without any); None: not named."""
    for subject in statement.get("subject") or []:
        if (
            isinstance(subject, dict)
            and isinstance(subject.get("digest"), dict)
            and subject["digest"].get("sha256") == hex_digest
        ):
            annotations = subject.get("annotations")
            return dict(annotations) if isinstance(annotations, dict) else {}
    return None


def check_bundle(
    bundle: bytes,
    image_digest: str,
    public_keys: Sequence[ec.EllipticCurvePublicKey],
    required_annotations: Mapping[str, str] | None = None,
    predicate_type: str = COSIGN_SIGN_PREDICATE,
) -> BundleCheck:
    """Judge one bundle as ``cosign verify --key`` 3.x does: a key verifies the DSSE envelope,
    the statement's subject is ``image_digest``, its predicate is a cosign image signature and
    it carries every required annotation. The reason says which of these failed."""
    validate_digest(image_digest)
    try:
        data = json.loads(bundle)
    except (ValueError, UnicodeDecodeError):
        return BundleCheck(None, "is not JSON (not a sigstore bundle)")
    if not isinstance(data, dict) or data.get("mediaType") not in BUNDLE_MEDIA_TYPES:
        return BundleCheck(
            None, f"is not a sigstore bundle (media type {data.get('mediaType') if isinstance(data, dict) else None!r})"
        )
    if "dsseEnvelope" not in data:
        return BundleCheck(None, "holds no DSSE envelope (a message-signature bundle signs a blob, not an image)")
    parsed = parse_envelope(go_json(data["dsseEnvelope"]))
    if parsed is None or parsed[0] != INTOTO_PAYLOAD_TYPE:
        return BundleCheck(None, "has a DSSE envelope that is not an in-toto statement")
    kind, payload, signatures = parsed
    message = dsse_pae(kind, payload)
    key_index = next(
        (i for i, key in enumerate(public_keys) if any(verify_payload(key, message, sig) for sig in signatures)), None
    )
    if key_index is None:
        return BundleCheck(None, "its signature does not verify with any of the keys (wrong key or altered statement)")
    statement = _statement(payload)
    if statement is None:
        return BundleCheck(None, "its signed payload is not an in-toto statement")
    annotations = _subject_annotations(statement, image_digest.split(":", 1)[1])
    if annotations is None:
        named = [s.get("digest", {}).get("sha256") for s in statement.get("subject") or [] if isinstance(s, dict)]
        return BundleCheck(
            None,
            f"its statement signs {', '.join(f'sha256:{n}' for n in named) or 'nothing'}, "
            f"not {image_digest} (digest mismatch)",
            statement,
        )
    if statement.get("predicateType") != predicate_type:
        return BundleCheck(
            None, f"its predicate type {statement.get('predicateType')!r} is not {predicate_type!r}", statement
        )
    missing = {k: v for k, v in (required_annotations or {}).items() if annotations.get(k) != v}
    if missing:
        return BundleCheck(None, f"it lacks the annotations {missing}", statement)
    return BundleCheck(key_index, "verifies", statement)


def merge_referrers_index(existing: bytes | None, descriptors: Sequence[Mapping[str, Any]]) -> bytes | None:
    """The fallback tag's index with ``descriptors`` added (those already listed, by digest,
    are kept as they are); None when nothing is missing. Other referrers survive."""
    data: dict[str, Any] = {}
    if existing is not None:
        try:
            loaded = json.loads(existing)
        except ValueError:
            loaded = None
        if isinstance(loaded, dict) and isinstance(loaded.get("manifests", []), list):
            data = loaded
    manifests = [m for m in data.get("manifests", []) if isinstance(m, dict)]
    listed = {m.get("digest") for m in manifests}
    missing = [dict(d) for d in descriptors if d.get("digest") not in listed]
    if existing is not None and data and not missing:
        return None
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": REFERRERS_INDEX_MEDIA_TYPE,
        "manifests": manifests + missing,
    }
    if isinstance(data.get("annotations"), dict):
        index["annotations"] = data["annotations"]
    return go_json(index)
