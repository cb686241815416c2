"""Cosign-compatible image signatures with a key pair: keys, payloads, the ``.sig`` image.

Everything here is pure bytes in, bytes out (no registry I/O), so signatures we make verify
with ``cosign verify --key cosign.pub --insecure-ignore-tlog=true IMAGE@DIGEST`` and cosign's
signatures verify here. ``_attestation`` does the same for SLSA provenance: an in-toto
statement in a DSSE envelope on the ``.att`` tag, as ``cosign attest`` writes it;
``_bundle`` reads cosign 3's Sigstore bundles, stored as OCI referrers of the image. The format is pinned byte for byte in the tests against artifacts
the real cosign produced.
"""

from __future__ import annotations

from pipeline.signing._attestation import (
    BUILD_TYPE,
    BUILDER_ID_PREFIX,
    DSSE_MEDIA_TYPE,
    INTOTO_PAYLOAD_TYPE,
    PREDICATE_TYPE_ANNOTATION,
    SLSA_PROVENANCE_V1,
    STATEMENT_TYPE,
    VerifiedAttestation,
    append_attestation,
    attestation_tag,
    dsse_envelope,
    dsse_pae,
    envelope_statement,
    provenance_statement,
    source_uri,
    statement_bytes,
    verify_attestation_manifest,
    verify_envelope,
)
from pipeline.signing._bundle import (
    BUNDLE_MEDIA_TYPE,
    BUNDLE_MEDIA_TYPES,
    COSIGN_SIGN_PREDICATE,
    REFERRERS_INDEX_MEDIA_TYPE,
    BundleCheck,
    bundle_layer,
    check_bundle,
    merge_referrers_index,
    referrers_tag,
)
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
from pipeline.signing._provenance import attach_provenance
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
    "BUILDER_ID_PREFIX",
    "BUILD_TYPE",
    "BUNDLE_MEDIA_TYPE",
    "BUNDLE_MEDIA_TYPES",
    "CONFIG_MEDIA_TYPE",
    "COSIGN_SIGNATURE_TYPE",
    "COSIGN_SIGN_PREDICATE",
    "DSSE_MEDIA_TYPE",
    "INTOTO_PAYLOAD_TYPE",
    "MANIFEST_MEDIA_TYPE",
    "PASSWORD_ENV",
    "PREDICATE_TYPE_ANNOTATION",
    "REFERRERS_INDEX_MEDIA_TYPE",
    "SIGNATURE_ANNOTATION",
    "SIMPLESIGNING_MEDIA_TYPE",
    "SLSA_PROVENANCE_V1",
    "STATEMENT_TYPE",
    "Blob",
    "BundleCheck",
    "SignatureManifestUpdate",
    "VerifiedAttestation",
    "VerifiedSignature",
    "append_attestation",
    "append_signature",
    "attach_provenance",
    "attestation_tag",
    "bundle_layer",
    "check_bundle",
    "decrypt_private_key",
    "dsse_envelope",
    "dsse_pae",
    "encrypt_private_key",
    "envelope_statement",
    "generate_key_pair",
    "load_private_key",
    "load_public_key",
    "merge_referrers_index",
    "normalize_reference",
    "parse_payload",
    "password_from_env",
    "provenance_statement",
    "public_key_from_pem",
    "public_key_pem",
    "referrers_tag",
    "sign_payload",
    "signature_config",
    "signature_tag",
    "simple_signing_payload",
    "source_uri",
    "statement_bytes",
    "verify_attestation_manifest",
    "verify_envelope",
    "verify_payload",
    "verify_signature_manifest",
]
