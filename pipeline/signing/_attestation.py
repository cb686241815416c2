"""SLSA provenance for a built digest, signed as a cosign attestation: pure bytes in and out.

Three layers, each one a format other tools read:

- the **statement**: an in-toto Statement v1 whose subject is the image (repository without
  tag, sha256 digest) and whose predicate is SLSA provenance v1
  (https://slsa.dev/spec/v1.0/provenance);
- the **DSSE envelope** (https://github.com/secure-systems-lab/dsse/blob/master/envelope.md)
  around it: ``payloadType`` ``application/vnd.in-toto+json``, the statement's compact JSON in
  base64, one ECDSA P-256 / SHA-256 signature (DER, base64) over the DSSE pre-authentication
  encoding ``DSSEv1 <len(type)> <type> <len(body)> <body>``, ``keyid`` empty as cosign leaves it;
- the ``sha256-<hex>.att`` image cosign keeps attestations in: built like the ``.sig`` image
  (same config rule, one history entry and diff_id per layer) but each layer is an envelope,
  media type ``application/vnd.dsse.envelope.v1+json``, annotated with its ``predicateType``
  and, as cosign's ``static.NewAttestation`` writes it, an empty
  ``dev.cosignproject.cosign/signature`` (the signature lives inside the envelope).

So ``cosign verify-attestation --key cosign.pub --type slsaprovenance1
--insecure-ignore-tlog=true IMAGE@DIGEST`` can check what we attach.

What the predicate says (``buildType`` :data:`BUILD_TYPE`, version 1):

- ``buildDefinition.externalParameters``: what a person chose and could change to get another
  image: ``source`` (the repository URL without credentials), ``ref``, ``context`` and
  ``dockerfile`` (paths inside the repository), ``target`` (null: the last stage),
  ``buildArgs`` (exactly the build-args given to BuildKit, i.e. the build row's recorded args;
  BuildKit secrets are never build-args and never appear anywhere in the statement),
  ``platforms`` ([]: the engine's own).
- ``buildDefinition.resolvedDependencies``: the source as ``git+<url>@<ref>`` with its
  ``gitCommit`` digest.
- ``runDetails.builder.id``: ``urn:pipeline:builder:<engine>`` (this service, and the Docker
  engine that ran BuildKit, percent-encoded); ``version`` names the builder mode.
- ``runDetails.metadata``: ``invocationId`` (the build id), ``startedOn`` and ``finishedOn``
  (RFC 3339, UTC).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.errors import SigningError
from pipeline.signing._payload import go_json, normalize_reference, sign_payload, validate_digest, verify_payload
from pipeline.signing._sigmanifest import (
    MANIFEST_MEDIA_TYPE,
    SIGNATURE_ANNOTATION,
    Blob,
    SignatureManifestUpdate,
    _checked_layer,
    _manifest,
    signature_config,
    signature_tag,
)
from pipeline.types import content_digest, is_digest

__all__ = [
    "BUILDER_ID_PREFIX",
    "BUILD_TYPE",
    "DSSE_MEDIA_TYPE",
    "INTOTO_PAYLOAD_TYPE",
    "PREDICATE_TYPE_ANNOTATION",
    "SLSA_PROVENANCE_V1",
    "STATEMENT_TYPE",
    "VerifiedAttestation",
    "append_attestation",
    "attestation_tag",
    "dsse_envelope",
    "dsse_pae",
    "envelope_statement",
    "provenance_statement",
    "source_uri",
    "statement_bytes",
    "verify_attestation_manifest",
    "verify_envelope",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
_LEGACY_STATEMENT_TYPE = "https://in-toto.io/Statement/v0.1"  # what cosign 2 writes; still read
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
PREDICATE_TYPE_ANNOTATION = "predicateType"
BUILD_TYPE = "urn:pipeline:buildtype:buildkit-dockerfile:v1"
BUILDER_ID_PREFIX = "urn:pipeline:builder:"
_MANIFEST_TYPES = (MANIFEST_MEDIA_TYPE, "application/vnd.docker.distribution.manifest.v2+json")
_SCP_LIKE = re.compile(r"^(?:[^@/:\s]+@)?([^/:\s]+):(?!//)(.+)$")
_COMMIT = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


def attestation_tag(digest: str) -> str:
    """The tag cosign keeps attestations under: ``sha256-<hex>.att``."""
    return signature_tag(digest).removesuffix(".sig") + ".att"


# -- the statement ----------------------------------------------------------------------------


def source_uri(repo: str) -> str:
    """The repository as a URL anyone may read: no user, no password, no token.

    ``user:token@`` in an HTTP(S) URL is dropped whole (not masked: a masked URL is not the
    repository's address); an scp-like ``git@host:path`` becomes ``ssh://host/path``.
    """
    repo = repo.strip()
    parts = urlsplit(repo)
    if parts.scheme and parts.netloc:
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    if parts.scheme == "file" or repo.startswith("/"):
        return urlunsplit(("file", "", parts.path if parts.scheme else repo, "", ""))
    scp = _SCP_LIKE.match(repo)
    if scp and "/" not in scp.group(1):
        return f"ssh://{scp.group(1)}/{scp.group(2)}"
    return repo


def _rfc3339(when: dt.datetime) -> str:
    if when.tzinfo is None:
        raise SigningError("provenance times must be timezone-aware")
    return when.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _strings(value: Mapping[str, str], what: str) -> dict[str, str]:
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise SigningError(f"provenance {what}: {key!r}={item!r}: keys and values must be strings")
    return {key: value[key] for key in sorted(value)}


def provenance_statement(
    *,
    repository: str,
    digest: str,
    source_repo: str,
    ref: str,
    commit: str,
    dockerfile: str,
    build_args: Mapping[str, str],
    build_id: int | str,
    started_on: dt.datetime,
    finished_on: dt.datetime,
    engine: str,
    builder_mode: str | None = None,
    context: str = ".",
    target: str | None = None,
    platforms: Sequence[str] = (),
) -> dict[str, Any]:
    """The in-toto statement with SLSA provenance v1 for one built digest (see the module doc).

    ``build_args`` must be the args BuildKit was given (recorded on the build row); nothing
    else about the build's inputs is taken, so BuildKit secrets cannot leak into it.
    """
    hex_digest = validate_digest(digest).split(":", 1)[1]
    if not _COMMIT.fullmatch(commit):
        raise SigningError(f"provenance: {commit!r} is not a full git commit id")
    url = source_uri(source_repo)
    version = {"mode": builder_mode} if builder_mode else None
    builder: dict[str, Any] = {"id": BUILDER_ID_PREFIX + quote(engine or "default", safe="")}
    if version:
        builder["version"] = version
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": normalize_reference(repository), "digest": {"sha256": hex_digest}}],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "source": url,
                    "ref": ref,
                    "context": context,
                    "dockerfile": dockerfile,
                    "target": target,
                    "buildArgs": _strings(build_args, "build args"),
                    "platforms": list(platforms),
                },
                "resolvedDependencies": [{"uri": f"git+{url}@{ref}", "digest": {"gitCommit": commit}}],
            },
            "runDetails": {
                "builder": builder,
                "metadata": {
                    "invocationId": str(build_id),
                    "startedOn": _rfc3339(started_on),
                    "finishedOn": _rfc3339(finished_on),
                },
            },
        },
    }


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    """The compact JSON the envelope carries (Go ``json.Marshal`` style, keys in given order)."""
    return go_json(statement)


# -- DSSE -----------------------------------------------------------------------------------


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what the signature covers.

    ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, lengths in bytes as ASCII decimal.
    """
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def dsse_envelope(statement: Mapping[str, Any], key: ec.EllipticCurvePrivateKey) -> bytes:
    """The signed envelope as sigstore's DSSE wrapper writes it (struct order, compact)."""
    payload = statement_bytes(statement)
    signature = sign_payload(key, dsse_pae(INTOTO_PAYLOAD_TYPE, payload))
    return go_json(
        {
            "payloadType": INTOTO_PAYLOAD_TYPE,
            "payload": base64.b64encode(payload).decode("ascii"),
            "signatures": [{"keyid": "", "sig": signature}],
        }
    )


def parse_envelope(envelope: bytes) -> tuple[str, bytes, list[str]] | None:
    try:
        data = json.loads(envelope)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    kind, body, signatures = data.get("payloadType"), data.get("payload"), data.get("signatures")
    if not isinstance(kind, str) or not isinstance(body, str) or not isinstance(signatures, list):
        return None
    try:
        payload = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        try:  # DSSE allows URL-safe base64 too
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return None
    sigs = [s["sig"] for s in signatures if isinstance(s, dict) and isinstance(s.get("sig"), str)]
    return kind, payload, sigs


def envelope_statement(envelope: bytes) -> dict[str, Any] | None:
    """The statement inside an envelope, unverified (for showing, never for trusting)."""
    parsed = parse_envelope(envelope)
    if parsed is None or parsed[0] != INTOTO_PAYLOAD_TYPE:
        return None
    try:
        statement = json.loads(parsed[1])
    except (ValueError, UnicodeDecodeError):
        return None
    ok = isinstance(statement, dict) and statement.get("_type") in (STATEMENT_TYPE, _LEGACY_STATEMENT_TYPE)
    return statement if ok else None


def verify_envelope(envelope: bytes, public_keys: Sequence[ec.EllipticCurvePublicKey]) -> dict[str, Any] | None:
    """The statement if one of the envelope's signatures verifies with one of the keys; else None.

    The signature is checked over the PAE of the payload bytes as sent, before the payload is
    parsed; a wrong payload type, a bad signature or garbage are all just None.
    """
    parsed = parse_envelope(envelope)
    if parsed is None or parsed[0] != INTOTO_PAYLOAD_TYPE:
        return None
    kind, payload, signatures = parsed
    message = dsse_pae(kind, payload)
    if not any(verify_payload(key, message, sig) for sig in signatures for key in public_keys):
        return None
    return envelope_statement(envelope)


# -- the .att image -------------------------------------------------------------------------


def _attestation_layer(envelope: bytes, predicate_type: str) -> dict[str, Any]:
    return {
        "mediaType": DSSE_MEDIA_TYPE,
        "size": len(envelope),
        "digest": content_digest(envelope),
        "annotations": {SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: predicate_type},
    }


def _parse_att_manifest(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        raise SigningError(f"{what} is not JSON; delete the .att tag or fix it before attesting again") from None
    if not isinstance(data, dict) or not isinstance(data.get("layers", []), list):
        raise SigningError(f"{what} is not an image manifest (no layer list)")
    if data.get("mediaType", MANIFEST_MEDIA_TYPE) not in _MANIFEST_TYPES:
        raise SigningError(f"{what} has media type {data.get('mediaType')!r}, not an image manifest")
    return data


def append_attestation(
    existing_manifest: bytes | None, envelope: bytes, predicate_type: str = SLSA_PROVENANCE_V1
) -> SignatureManifestUpdate:
    """Add one envelope layer to the ``.att`` image (``None``: there is none yet).

    Other layers (other predicates, other signers) are kept as they are. The same envelope
    already there changes nothing (``changed`` False, nothing to upload).
    """
    if envelope_statement(envelope) is None:
        raise SigningError("not a DSSE envelope of an in-toto statement; refusing to attach it")
    what = "the existing attestation manifest"
    data = {} if existing_manifest is None else _parse_att_manifest(existing_manifest, what)
    layers = [_checked_layer(layer, what) for layer in data.get("layers", [])]
    new_layer = _attestation_layer(envelope, predicate_type)
    if existing_manifest is not None and any(layer["digest"] == new_layer["digest"] for layer in layers):
        return SignatureManifestUpdate(manifest=existing_manifest, config=None, uploads=(), changed=False)
    layers.append(new_layer)
    config = signature_config([layer["digest"] for layer in layers])
    manifest = _manifest(config, layers, data)
    uploads = (Blob(content_digest(config), config), Blob(new_layer["digest"], envelope))
    return SignatureManifestUpdate(manifest=manifest, config=config, uploads=uploads, changed=True)


@dataclass(frozen=True)
class VerifiedAttestation:
    """One ``.att`` layer that passed: position, layer digest, the key that verified it."""

    layer_index: int
    layer_digest: str
    key_index: int
    statement: dict[str, Any]


def _names_digest(statement: Mapping[str, Any], image_digest: str) -> bool:
    hex_digest = image_digest.split(":", 1)[1]
    subjects = statement.get("subject")
    return isinstance(subjects, list) and any(
        isinstance(s, dict) and isinstance(s.get("digest"), dict) and s["digest"].get("sha256") == hex_digest
        for s in subjects
    )


def verify_attestation_manifest(
    manifest_bytes: bytes,
    fetch_blob: Callable[[str], bytes],
    image_digest: str,
    public_keys: Sequence[ec.EllipticCurvePublicKey],
    predicate_type: str | None = SLSA_PROVENANCE_V1,
) -> list[VerifiedAttestation]:
    """Every envelope layer that verifies, as ``cosign verify-attestation --key`` judges them.

    A layer passes when its blob hashes to its descriptor, a key verifies the envelope, the
    statement's subject names ``image_digest`` and (unless ``predicate_type`` is None) its
    predicate type is the one asked for. Errors from ``fetch_blob`` propagate.
    """
    validate_digest(image_digest)
    data = _parse_att_manifest(manifest_bytes, "the attestation manifest")
    verified = []
    for index, layer in enumerate(data.get("layers", [])):
        if not isinstance(layer, dict) or layer.get("mediaType") != DSSE_MEDIA_TYPE:
            continue
        digest = layer.get("digest")
        if not is_digest(digest):
            continue
        blob = fetch_blob(digest)
        if content_digest(blob) != digest or (isinstance(layer.get("size"), int) and layer["size"] != len(blob)):
            continue
        for key_index, key in enumerate(public_keys):
            statement = verify_envelope(blob, [key])
            if statement is None:
                continue
            if _names_digest(statement, image_digest) and (
                predicate_type is None or statement.get("predicateType") == predicate_type
            ):
                verified.append(VerifiedAttestation(index, digest, key_index, statement))
            break
    return verified
