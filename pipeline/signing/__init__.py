"""Cosign-compatible image signatures with a key pair: keys, payloads, the ``.sig`` image.

Everything here is pure bytes in, bytes out (no registry I/O), so signatures we make verify
with ``cosign verify --key cosign.pub --insecure-ignore-tlog=true IMAGE@DIGEST`` and cosign's
signatures verify here. The format is pinned byte for byte in the tests against artifacts
the real cosign produced.
"""

from __future__ import annotations

from pipeline.signing._keys import (
    PASSWORD_ENV,
    decrypt_private_key,
    encrypt_private_key,
    generate_key_pair,
    load_private_key,
    load_public_key,
    password_from_env,
    public_key_from_pem,
    public_key_pem,
)
from pipeline.signing._payload import (
    COSIGN_SIGNATURE_TYPE,
    normalize_reference,
    parse_payload,
    sign_payload,
    simple_signing_payload,
    verify_payload,
)
from pipeline.signing._sigmanifest import (
    CONFIG_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    SIGNATURE_ANNOTATION,
    SIMPLESIGNING_MEDIA_TYPE,
    Blob,
    SignatureManifestUpdate,
    VerifiedSignature,
    append_signature,
    signature_config,
    signature_tag,
    verify_signature_manifest,
)

__all__ = [
    "CONFIG_MEDIA_TYPE",
    "COSIGN_SIGNATURE_TYPE",
    "MANIFEST_MEDIA_TYPE",
    "PASSWORD_ENV",
    "SIGNATURE_ANNOTATION",
    "SIMPLESIGNING_MEDIA_TYPE",
    "Blob",
    "SignatureManifestUpdate",
    "VerifiedSignature",
    "append_signature",
    "decrypt_private_key",
    "encrypt_private_key",
    "generate_key_pair",
    "load_private_key",
    "load_public_key",
    "normalize_reference",
    "parse_payload",
    "password_from_env",
    "public_key_from_pem",
    "public_key_pem",
    "sign_payload",
    "signature_config",
    "signature_tag",
    "simple_signing_payload",
    "verify_payload",
    "verify_signature_manifest",
]
