"""The simple-signing payload cosign signs, and the ECDSA signature over it.

The payload's bytes are what the signature covers, so they must be exactly the ones cosign
writes (Go's ``json.Marshal``): any other spacing, key order or escaping yields a payload that
still verifies for us but that no other tool would ever produce or compare equal to.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.errors import SigningError
from pipeline.types import is_digest

__all__ = [
    "COSIGN_SIGNATURE_TYPE",
    "go_json",
    "normalize_reference",
    "parse_payload",
    "sign_payload",
    "simple_signing_payload",
    "validate_digest",
    "verify_payload",
]

COSIGN_SIGNATURE_TYPE = "cosign container image signature"
DOCKER_HUB = "index.docker.io"
_DOCKER_HUB_ALIAS = "docker.io"
_REPOSITORY_CHARS = re.compile(r"[a-z0-9_.\-/]+")
_REGISTRY_CHARS = re.compile(r"[A-Za-z0-9.\-:\[\]]+")
# Go's encoder escapes these even inside strings so JSON can be embedded in HTML and JavaScript.
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def go_json(value: Any) -> bytes:
    """Serialize like Go's ``json.Marshal``, because signatures and digests cover these bytes.

    Compact separators, UTF-8 written as is, and Go's HTML-safe escapes. The escaped characters
    can only occur inside JSON strings, so replacing them after encoding is safe. Callers build
    dicts in the Go struct's field order and sort map keys themselves where Go sorts them.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    text = _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group()], text)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise SigningError("text to sign contains a lone surrogate, not valid Unicode") from None


def validate_digest(digest: str) -> str:
    """Refuse anything but ``sha256:<64 lowercase hex>``: cosign compares digests as strings."""
    if not is_digest(digest):
        raise SigningError(f"{digest!r} is not an image digest (sha256: and 64 lowercase hex digits)")
    return digest


def _strip_tag_and_digest(reference: str) -> str:
    name = reference.split("@", 1)[0]
    head, sep, tail = name.rpartition(":")
    return head if sep and "/" not in tail else name


def _split_registry(name: str) -> tuple[str, str]:
    """go-containerregistry's rule: the first part is a registry iff it has a '.' or ':'.

    Like cosign (and unlike Docker), a bare ``localhost/x`` without a port is a Docker Hub name.
    """
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first):
        return first, rest
    return DOCKER_HUB, name


def _valid_path(path: str) -> bool:
    return bool(_REPOSITORY_CHARS.fullmatch(path)) and "" not in path.split("/")


def normalize_reference(repo: str) -> str:
    """The repository as cosign writes it into ``docker-reference``: registry spelled out.

    Tag and digest go away because the signature names the image by digest; Docker Hub's
    aliases collapse into ``index.docker.io`` (with ``library/`` for official images) so that
    a payload we write equals the one cosign writes for the same image.
    """
    registry, path = _split_registry(_strip_tag_and_digest(repo.strip()))
    if registry == _DOCKER_HUB_ALIAS:
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not _REGISTRY_CHARS.fullmatch(registry) or not _valid_path(path):
        raise SigningError(f"{repo!r} is not an image repository (a lowercase name like registry/team/app)")
    return f"{registry}/{path}"


def _annotations_object(annotations: Mapping[str, str] | None) -> dict[str, str] | None:
    if not annotations:
        return None
    for key, value in annotations.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SigningError(f"annotation {key!r}={value!r}: keys and values must be strings")
    return {key: annotations[key] for key in sorted(annotations)}


def simple_signing_payload(docker_reference: str, digest: str, annotations: Mapping[str, str] | None = None) -> bytes:
    """The exact bytes ``cosign sign`` signs for this image, so both tools agree on them.

    Field order is the Go struct's; annotation keys are sorted as Go sorts map keys; no
    annotations gives ``"optional":null`` like cosign without ``-a``.
    """
    payload = {
        "critical": {
            "identity": {"docker-reference": normalize_reference(docker_reference)},
            "image": {"docker-manifest-digest": validate_digest(digest)},
            "type": COSIGN_SIGNATURE_TYPE,
        },
        "optional": _annotations_object(annotations),
    }
    return go_json(payload)


def sign_payload(key: ec.EllipticCurvePrivateKey, payload: bytes) -> str:
    """ECDSA-SHA256, ASN.1 DER, standard base64: what cosign stores in the layer annotation."""
    return base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode("ascii")


def _decode_signature(signature_b64: str) -> bytes | None:
    # Go's base64 decoder skips CR and LF, and `cosign attach` passes wrapped base64 through.
    cleaned = signature_b64.replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        return None


def verify_payload(public_key: ec.EllipticCurvePublicKey, payload: bytes, signature_b64: str) -> bool:
    """True only if the signature is the key's over these exact bytes; garbage is just False.

    Verification runs over many layers and keys where most pairs do not match, so a mismatch
    is an answer, not an error.
    """
    signature = _decode_signature(signature_b64) if isinstance(signature_b64, str) else None
    if not signature:
        return False
    try:
        public_key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SigningError(f"signature payload: {where} is not a JSON object")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SigningError(f"signature payload: {where} is missing or not a string")
    return value


def _decode_json(payload: bytes) -> Any:
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise SigningError("signature payload is not UTF-8 JSON") from None


def parse_payload(payload: bytes) -> dict[str, Any]:
    """The payload as a dict, once it has the shape every cosign payload has.

    Stricter than ``cosign verify`` in one way: ``critical.type`` must be cosign's, so a payload
    the same key signed for another purpose cannot pass for an image signature.
    """
    data = _object(_decode_json(payload), "the payload")
    critical = _object(data.get("critical"), "critical")
    kind = _string(critical.get("type"), "critical.type")
    if kind != COSIGN_SIGNATURE_TYPE:
        raise SigningError(f"signature payload: type {kind!r} is not {COSIGN_SIGNATURE_TYPE!r}")
    image = _object(critical.get("image"), "critical.image")
    _string(image.get("docker-manifest-digest"), "critical.image.docker-manifest-digest")
    _object(critical.get("identity", {}), "critical.identity")
    if data.get("optional") is not None:
        _object(data["optional"], "optional")
    return data
