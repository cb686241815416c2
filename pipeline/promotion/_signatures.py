"""Promotion steps for cosign signatures: verify at the source, carry them along, sign the target.

Signatures come in two layouts: the ``sha256-<hex>.sig`` tag (cosign 2, and what we write) and
cosign 3's sigstore bundles, stored as OCI referrers of the digest (the referrers API, or the
``sha256-<hex>`` fallback index on registries without it). Both are verified and carried.

The ``.sig`` image of a digest is a tag (``sha256-<hex>.sig``) anyone may rewrite, so every
change is a read-modify-write: fetch, append, upload, PUT, then read back and check the layer
is there, again if a concurrent signer overwrote it. Signers on one host are serialized by a
file lock in the data dir; between hosts the read-back narrows the race but cannot close it
(the registry has no compare-and-swap), see ``pipeline.registry.update_artifact``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.errors import NotFound, PolicyViolation, SigningError
from pipeline.registry import Manifest, RegistryClient, copy_image, update_artifact
from pipeline.signing import (
    BUNDLE_MEDIA_TYPES,
    BundleCheck,
    bundle_layer,
    check_bundle,
    merge_referrers_index,
    referrers_tag,
    SIGNATURE_ANNOTATION,
    SIMPLESIGNING_MEDIA_TYPE,
    append_signature,
    load_private_key,
    load_public_key,
    parse_payload,
    sign_payload,
    signature_tag,
    simple_signing_payload,
    verify_payload,
    verify_signature_manifest,
)

if TYPE_CHECKING:
    from pipeline.promotion._run import StepContext

__all__ = ["SignatureRefused", "attestation_tag", "copy_signatures", "sign_image", "verify_signature"]



class SignatureRefused(PolicyViolation):
    """The environment demands a signature the source does not carry: the promotion is rejected."""


def attestation_tag(digest: str) -> str:
    return signature_tag(digest).removesuffix(".sig") + ".att"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layers(raw: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(raw)
    except ValueError:
        return []
    layers = data.get("layers") if isinstance(data, dict) else None
    return [layer for layer in layers or [] if isinstance(layer, dict)]


def _signature_of(layer: dict[str, Any]) -> str | None:
    annotations = layer.get("annotations")
    value = annotations.get(SIGNATURE_ANNOTATION) if isinstance(annotations, dict) else None
    return value if isinstance(value, str) else None


def _has_layer(raw: bytes, digest: str, signature: str) -> bool:
    return any(layer.get("digest") == digest and _signature_of(layer) == signature for layer in _layers(raw))


def _short(digest: str) -> str:
    return digest[:19] + "…" if len(digest) > 19 else digest


# -- verify-signature ------------------------------------------------------------------------


def _load_verify_keys(paths: Sequence[Path], where: str) -> list[ec.EllipticCurvePublicKey]:
    keys = []
    for path in paths:
        try:
            keys.append(load_public_key(path))
        except SigningError as exc:
            raise SigningError(f"{where}.verify: cannot use {path} to verify signatures: {exc.message}") from None
    return keys


def _why_not(layer: dict[str, Any], fetch: Callable[[str], bytes], digest: str,
             keys: Sequence[ec.EllipticCurvePublicKey]) -> str:
    """What is wrong with one layer that did not verify, in words."""
    signature = _signature_of(layer)
    if signature is None:
        return "has no signature annotation"
    layer_digest = str(layer.get("digest") or "")
    payload = fetch(layer_digest)
    if _sha256(payload) != layer_digest:
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


def _bundle_verdicts(client: RegistryClient, repository: str, digest: str,
                     keys: Sequence[ec.EllipticCurvePublicKey]) -> list[tuple[str, BundleCheck]]:
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


def verify_signature(ctx: StepContext) -> str:
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
            return (f"{ctx.source.name}:{tag} layer {verified[0].layer_index} "
                    f"({_short(verified[0].layer_digest)}) verifies with {key}")
        if not problems:
            layers = _layers(found.raw)
            problems.append("; ".join(f"layer {i} ({_short(str(layer.get('digest')))}) "
                                      f"{_why_not(layer, fetch, digest, keys)}"
                                      for i, layer in enumerate(layers)) or "it has no layers")
    bundles = _bundle_verdicts(client, repository, digest, keys)
    for referrer, check in bundles:
        if check.ok:
            assert check.key_index is not None
            return (f"{ctx.source.name}: sigstore bundle {_short(referrer)} (an OCI referrer of the digest) "
                    f"verifies with {ctx.env.verify[check.key_index]}")
    problems += [f"sigstore bundle {_short(referrer)} {check.reason}" for referrer, check in bundles]
    if found is None and not bundles:
        raise SignatureRefused(f"{ctx.env.name} requires a signature: no signature for {digest} in "
                               f"{ctx.source.name} (no {tag} tag, no sigstore bundle among its referrers); "
                               f"keys tried: {names}")
    where_looked = f"{ctx.source.name}:{tag}" if found is not None else f"{ctx.source.name} (its referrers)"
    raise SignatureRefused(f"{ctx.env.name} requires a signature: no valid signature for {digest} in "
                           f"{where_looked}; keys tried: {names}; {'; '.join(problems)}")


# -- copy-signatures ------------------------------------------------------------------------


def _merge_sig(source_raw: bytes, read_payload: Callable[[str], bytes]) -> Callable[
        [bytes | None], tuple[bytes | None, list[tuple[str, bytes]]]]:
    """A change adding every simple-signing layer of the source the target lacks."""
    wanted = [layer for layer in _layers(source_raw)
              if layer.get("mediaType") == SIMPLESIGNING_MEDIA_TYPE and _signature_of(layer)]

    def change(existing: bytes | None) -> tuple[bytes | None, list[tuple[str, bytes]]]:
        if existing is None:
            return source_raw, []  # the copy by digest already brought its blobs
        manifest, blobs, config = existing, [], None
        for layer in wanted:
            update = append_signature(manifest, read_payload(str(layer["digest"])), str(_signature_of(layer)))
            if update.changed:
                manifest, config = update.manifest, update.config
                blobs += [(blob.digest, blob.data) for blob in update.uploads if blob.digest != _sha256(update.config or b"")]
        if manifest is existing:
            return None, []
        assert config is not None
        return manifest, [*blobs, (_sha256(config), config)]

    return change


def copy_signatures(ctx: StepContext) -> str:
    """Carry the digest's ``.sig`` and ``.att`` tags from the source repository to the target.

    Each is copied by digest; a target without the tag gets the source's exact bytes. A target
    ``.sig`` that already exists (another environment signed into this repository) keeps its
    layers and gains the source's missing ones; an existing different ``.att`` is left alone.
    """
    source, target = ctx.client(ctx.source), ctx.client(ctx.target)
    digest, notes = ctx.promotion.digest, []
    for tag in (signature_tag(digest), attestation_tag(digest)):
        info = source.find_manifest(ctx.source.repository, tag)
        if info is None:
            notes.append(f"no {tag.rsplit('.', 1)[1]} in the source")
            continue
        copy_image(source, ctx.source.repository, target, ctx.target.repository, info.digest, tags=[])
        copied = source.manifest(ctx.source.repository, info.digest)
        if tag.endswith(".sig"):
            layers = {(layer.get("digest"), _signature_of(layer)) for layer in _layers(copied.raw)}

            def present(raw: bytes, layers: set[Any] = layers) -> bool:
                have = {(layer.get("digest"), _signature_of(layer)) for layer in _layers(raw)}
                return layers <= have

            def payload(layer_digest: str) -> bytes:
                return target.read_blob(ctx.target.repository, layer_digest)

            wrote = update_artifact(ctx.config.data_dir, target, ctx.target.repository, tag,
                                       _merge_sig(copied.raw, payload), present)
            notes.append(f"{tag} ({len(layers)} signatures) {'copied' if wrote else 'already there'}")
            continue
        existing = target.find_manifest(ctx.target.repository, tag)
        if existing is None:
            target.put_manifest(ctx.target.repository, tag, copied)
            notes.append(f"{tag} copied")
        elif existing.digest == copied.digest:
            notes.append(f"{tag} already there")
        else:
            notes.append(f"{tag} differs in the target; kept the target's")
    carried = _copy_referrers(ctx, source, target, digest)
    if carried:
        notes.append(carried)
    return "; ".join(notes)


def _copy_referrers(ctx: StepContext, source: RegistryClient, target: RegistryClient, digest: str) -> str:
    """Carry the digest's OCI referrers (cosign 3's sigstore bundles, attestations pushed as
    referrers): each manifest by digest with its blobs, then, where the target has no referrers
    API, the ``sha256-<hex>`` fallback index gains their descriptors (others' entries kept)."""
    descriptors, _ = source.referrers(ctx.source.repository, digest)
    if not descriptors:
        return ""
    for descriptor in descriptors:
        copy_image(source, ctx.source.repository, target, ctx.target.repository, str(descriptor["digest"]), tags=[])
    _, indexed = target.referrers(ctx.target.repository, digest)
    if indexed:
        return f"{len(descriptors)} referrers copied (indexed by the target's referrers API)"
    wanted = {descriptor.get("digest") for descriptor in descriptors}

    def change(existing: bytes | None) -> tuple[bytes | None, list[tuple[str, bytes]]]:
        return merge_referrers_index(existing, descriptors), []

    def present(raw: bytes) -> bool:
        return wanted <= {m.get("digest") for m in Manifest(raw, "", "").children()}

    tag = referrers_tag(digest)
    wrote = update_artifact(ctx.config.data_dir, target, ctx.target.repository, tag, change, present)
    return f"{len(descriptors)} referrers {'copied' if wrote else 'already there'} ({tag} index)"


# -- sign -------------------------------------------------------------------------------------


def sign_image(ctx: StepContext) -> str:
    """Add our signature of the target repository and digest to the target's ``.sig``."""
    signing = ctx.config.signing
    if signing is None:
        raise SigningError(f"projects.{ctx.promotion.project}.environments.{ctx.env.name}.sign: "
                           "no signing key configured (signing.key_file)")
    key = load_private_key(signing.key_file, signing.password())
    public = key.public_key()
    digest, client, repository = ctx.promotion.digest, ctx.client(ctx.target), ctx.target.repository
    reference = f"{ctx.target.registry.host}/{repository}"
    payload = simple_signing_payload(reference, digest)
    payload_digest, tag = _sha256(payload), signature_tag(digest)
    signature = sign_payload(key, payload)
    ours: list[str] = [signature]

    def ours_in(raw: bytes) -> str | None:
        """A layer with our payload that our key verifies (a retried step finds its work done)."""
        for layer in _layers(raw):
            found = _signature_of(layer)
            if layer.get("digest") == payload_digest and found and verify_payload(public, payload, found):
                return found
        return None

    def change(existing: bytes | None) -> tuple[bytes | None, list[tuple[str, bytes]]]:
        if existing is not None and (found := ours_in(existing)):
            ours[0] = found
            return None, []
        update = append_signature(existing, payload, signature)
        ours[0] = signature
        return update.manifest, [(blob.digest, blob.data) for blob in update.uploads]

    wrote = update_artifact(ctx.config.data_dir, client, repository, tag, change,
                               lambda raw: _has_layer(raw, payload_digest, ours[0]))
    return (f"{'signed' if wrote else 'already signed'} {reference}@{digest} with {signing.key_file} "
            f"({tag}, layer {_short(payload_digest)})")
