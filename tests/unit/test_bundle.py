"""Cosign 3's sigstore bundles and the referrers fallback index, as pure bytes (the integration
tests run the real cosign 3 against the same code)."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.signing import (
    BUNDLE_MEDIA_TYPE,
    COSIGN_SIGN_PREDICATE,
    bundle_layer,
    check_bundle,
    dsse_pae,
    merge_referrers_index,
    referrers_tag,
    sign_payload,
)

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def bundle(
    key: ec.EllipticCurvePrivateKey,
    *,
    digest: str = DIGEST,
    predicate: str = COSIGN_SIGN_PREDICATE,
    annotations: dict[str, str] | None = None,
) -> bytes:
    """A bundle shaped like the one cosign 3.1 pushed in the integration test (DSSE, key hint)."""
    subject: dict[str, Any] = {"digest": {"sha256": digest.split(":")[1]}}
    if annotations:
        subject["annotations"] = annotations
    statement = json.dumps(
        {"_type": "https://in-toto.io/Statement/v1", "subject": [subject], "predicateType": predicate, "predicate": {}}
    ).encode()
    signature = sign_payload(key, dsse_pae("application/vnd.in-toto+json", statement))
    return json.dumps(
        {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"publicKey": {"hint": "x"}},
            "dsseEnvelope": {
                "payload": base64.b64encode(statement).decode(),
                "payloadType": "application/vnd.in-toto+json",
                "signatures": [{"sig": signature}],
            },
        }
    ).encode()


def test_a_bundle_verifies_only_for_its_key_digest_predicate_and_annotations() -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    good = check_bundle(
        bundle(key, annotations={"team": "ops"}), DIGEST, [other.public_key(), key.public_key()], {"team": "ops"}
    )
    assert good.ok and good.key_index == 1 and good.statement is not None

    assert "does not verify with any of the keys" in check_bundle(bundle(key), DIGEST, [other.public_key()]).reason
    assert "(digest mismatch)" in check_bundle(bundle(key, digest=OTHER), DIGEST, [key.public_key()]).reason
    assert (
        "predicate type"
        in check_bundle(bundle(key, predicate="https://slsa.dev/provenance/v1"), DIGEST, [key.public_key()]).reason
    )
    assert "lacks the annotations" in check_bundle(bundle(key), DIGEST, [key.public_key()], {"team": "ops"}).reason
    assert not check_bundle(b"not json", DIGEST, [key.public_key()]).ok

    tampered = json.loads(bundle(key, annotations={"team": "ops"}))
    statement = json.loads(base64.b64decode(tampered["dsseEnvelope"]["payload"]))
    statement["subject"][0]["annotations"] = {"team": "dev"}
    tampered["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    assert "does not verify" in check_bundle(json.dumps(tampered).encode(), DIGEST, [key.public_key()]).reason


def test_the_fallback_index_gains_missing_referrers_and_keeps_the_others() -> None:
    assert referrers_tag(DIGEST) == "sha256-" + "ab" * 32
    theirs = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": OTHER,
        "size": 10,
        "artifactType": "application/spdx+json",
    }
    ours = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": DIGEST,
        "size": 9,
        "artifactType": BUNDLE_MEDIA_TYPE,
    }
    first = merge_referrers_index(None, [theirs])
    assert first is not None and json.loads(first)["manifests"] == [theirs]
    merged = merge_referrers_index(first, [ours, theirs])
    assert merged is not None and json.loads(merged)["manifests"] == [theirs, ours]
    assert json.loads(merged)["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert merge_referrers_index(merged, [ours]) is None  # nothing missing: nothing to write

    manifest = json.dumps(
        {"artifactType": BUNDLE_MEDIA_TYPE, "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "digest": DIGEST, "size": 3}]}
    ).encode()
    assert bundle_layer(manifest) == {"mediaType": BUNDLE_MEDIA_TYPE, "digest": DIGEST, "size": 3}
    assert bundle_layer(json.dumps({"layers": [{"mediaType": "application/spdx+json"}]}).encode()) is None
