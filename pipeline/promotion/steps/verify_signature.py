"""``verify-signature``: refuse the promotion unless a key the environment trusts signed the
digest at the source, in either cosign layout (the ``.sig`` tag or a sigstore bundle referrer)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.errors import NotFound, SigningError
from pipeline.promotion.steps._contract import StepContext, StepInfo, StepResult
from pipeline.promotion.steps._cosign import SignatureRefused, layers, short, signature_of
from pipeline.registry import RegistryClient
from pipeline.signing import (
    BUNDLE_MEDIA_TYPES,
    BundleCheck,
    bundle_layer,
    check_bundle,
    load_public_key,
    parse_payload,
    signature_tag,
    verify_payload,
    verify_signature_manifest,
)
from pipeline.types import content_digest

__all__ = ["SIGNATURE_VERIFIER", "verify_signature"]


def _load_verify_keys(paths: Sequence[Path], where: str) -> list[ec.EllipticCurvePublicKey]:
    keys = []
    for path in paths:
        try:
            keys.append(load_public_key(path))
        except SigningError as exc:
            raise SigningError(f"{where}.verify: cannot use {path} to verify signatures: {exc.message}") from None
    return keys


def _why_not(
    layer: dict[str, Any], fetch: Callable[[str], bytes], digest: str, keys: Sequence[ec.EllipticCurvePublicKey]
) -> str:
    """What is wrong with one layer that did not verify, in words."""
    signature = signature_of(layer)
    if signature is None:
        return "has no signature annotation"
    layer_digest = str(layer.get("digest") or "")
    payload = fetch(layer_digest)
    if content_digest(payload) != layer_digest:
        return "its payload does not match the layer digest (missing or altered)"
    if not any(verify_payload(key, payload, signature) for key in keys):
        return "its signature does not verify with any of the keys (wrong key or altered signature)"
    try:
        claimed = parse_payload(payload)["critical"]["image"]["docker-manifest-digest"]
    except (SigningError, KeyError, TypeError):
        return "its payload is not a cosign simple-signing payload"
    if claimed != digest:
        return f"its payload signs {claimed}, not {digest} (digest mismatch)"
    return "it does not verify"


def _bundle_verdicts(
    client: RegistryClient, repository: str, digest: str, keys: Sequence[ec.EllipticCurvePublicKey]
) -> list[tuple[str, BundleCheck]]:
    """(referrer digest, verdict) for each sigstore bundle among the digest's OCI referrers
    (cosign 3's default format), read through the referrers API or its fallback tag."""
    verdicts = []
    descriptors, _ = client.referrers(repository, digest)
    for descriptor in descriptors:
        if descriptor.get("artifactType") not in (None, *BUNDLE_MEDIA_TYPES):
            continue  # an SBOM, an attestation of another kind: not a signature
        referrer = str(descriptor.get("digest"))
        found = client.find(repository, referrer)
        layer = bundle_layer(found.raw) if found is not None else None
        if layer is None:
            if descriptor.get("artifactType") in BUNDLE_MEDIA_TYPES:
                verdicts.append((referrer, BundleCheck(None, "is missing or holds no bundle layer")))
            continue
        try:
            bundle = client.read_blob(repository, str(layer.get("digest")))
        except NotFound:
            verdicts.append((referrer, BundleCheck(None, "its bundle blob is missing")))
            continue
        verdicts.append((referrer, check_bundle(bundle, digest, keys)))
    return verdicts


def _verify(ctx: StepContext) -> str:
    """Refuse the promotion unless one of ``env.verify`` accepts a signature of the digest at
    the source: a layer of its ``.sig`` tag (cosign 2, and cosign 3 with
    ``--new-bundle-format=false``) or a sigstore bundle among its OCI referrers (cosign 3)."""
    where = f"projects.{ctx.promotion.project}.environments.{ctx.env.name}"
    keys = _load_verify_keys(ctx.env.verify, where)
    names = ", ".join(str(path) for path in ctx.env.verify)
    digest, client, repository = ctx.promotion.digest, ctx.client(ctx.source), ctx.source.repository
    tag = signature_tag(digest)
    found = client.find(repository, tag)

    def fetch(layer_digest: str) -> bytes:
        try:
            return client.read_blob(repository, layer_digest)
        except NotFound:
            return b""  # a layer whose payload is gone cannot verify

    problems = []
    if found is not None:
        try:
            verified = verify_signature_manifest(found.raw, fetch, digest, keys)
        except SigningError as exc:
            verified = []
            problems.append(f"{ctx.source.name}:{tag} is unusable ({exc.message})")
        if verified:
            key = ctx.env.verify[verified[0].key_index]
            return (
                f"{ctx.source.name}:{tag} layer {verified[0].layer_index} "
                f"({short(verified[0].layer_digest)}) verifies with {key}"
            )
        if not problems:
            found_layers = layers(found.raw)
            problems.append(
                "; ".join(
                    f"layer {i} ({short(str(layer.get('digest')))}) {_why_not(layer, fetch, digest, keys)}"
                    for i, layer in enumerate(found_layers)
                )
                or "it has no layers"
            )
    bundles = _bundle_verdicts(client, repository, digest, keys)
    for referrer, check in bundles:
        if check.ok:
            assert check.key_index is not None
            return (
                f"{ctx.source.name}: sigstore bundle {short(referrer)} (an OCI referrer of the digest) "
                f"verifies with {ctx.env.verify[check.key_index]}"
            )
    problems += [f"sigstore bundle {short(referrer)} {check.reason}" for referrer, check in bundles]
    if found is None and not bundles:
        raise SignatureRefused(
            f"{ctx.env.name} requires a signature: no signature for {digest} in "
            f"{ctx.source.name} (no {tag} tag, no sigstore bundle among its referrers); "
            f"keys tried: {names}"
        )
    where_looked = f"{ctx.source.name}:{tag}" if found is not None else f"{ctx.source.name} (its referrers)"
    raise SignatureRefused(
        f"{ctx.env.name} requires a signature: no valid signature for {digest} in "
        f"{where_looked}; keys tried: {names}; {'; '.join(problems)}"
    )


def verify_signature(ctx: StepContext) -> StepResult:
    """Refuse the promotion unless one of ``env.verify`` accepts a signature of the digest at
    the source: a layer of its ``.sig`` tag (cosign 2, and cosign 3 with
    ``--new-bundle-format=false``) or a sigstore bundle among its OCI referrers (cosign 3)."""
    try:
        return StepResult(_verify(ctx))
    except SignatureRefused as refused:
        return StepResult(refused.message, status="refused")


SIGNATURE_VERIFIER = StepInfo(
    "verify-signature", verify_signature, reads=("source signatures", "verify keys"), writes=()
)
