"""``copy-signatures``: the digest's signatures and attestations travel with it, so whoever
pulls the environment's image finds them beside it (``.sig``, ``.att`` and OCI referrers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.promotion.steps._contract import StepContext, StepInfo, StepResult
from pipeline.promotion.steps._cosign import layers, signature_of
from pipeline.registry import Manifest, RegistryClient, copy_image, update_artifact
from pipeline.signing import (
    SIMPLESIGNING_MEDIA_TYPE,
    append_signature,
    attestation_tag,
    merge_referrers_index,
    referrers_tag,
    signature_tag,
)
from pipeline.types import content_digest

__all__ = ["SIGNATURE_COPIER", "copy_signatures"]


def _merge_sig(
    source_raw: bytes, read_payload: Callable[[str], bytes]
) -> Callable[[bytes | None], tuple[bytes | None, list[tuple[str, bytes]]]]:
    """A change adding every simple-signing layer of the source the target lacks."""
    wanted = [
        layer
        for layer in layers(source_raw)
        if layer.get("mediaType") == SIMPLESIGNING_MEDIA_TYPE and signature_of(layer)
    ]

    def change(existing: bytes | None) -> tuple[bytes | None, list[tuple[str, bytes]]]:
        if existing is None:
            return source_raw, []  # the copy by digest already brought its blobs
        manifest, blobs, config = existing, [], None
        for layer in wanted:
            update = append_signature(manifest, read_payload(str(layer["digest"])), str(signature_of(layer)))
            if update.changed:
                manifest, config = update.manifest, update.config
                blobs += [
                    (blob.digest, blob.data)
                    for blob in update.uploads
                    if blob.digest != content_digest(update.config or b"")
                ]
        if manifest is existing:
            return None, []
        assert config is not None
        return manifest, [*blobs, (content_digest(config), config)]

    return change


def copy_signatures(ctx: StepContext) -> StepResult:
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
            signed = {(layer.get("digest"), signature_of(layer)) for layer in layers(copied.raw)}

            def present(raw: bytes, signed: set[Any] = signed) -> bool:
                have = {(layer.get("digest"), signature_of(layer)) for layer in layers(raw)}
                return signed <= have

            def payload(layer_digest: str) -> bytes:
                return target.read_blob(ctx.target.repository, layer_digest)

            wrote = update_artifact(
                ctx.config.data_dir, target, ctx.target.repository, tag, _merge_sig(copied.raw, payload), present
            )
            notes.append(f"{tag} ({len(signed)} signatures) {'copied' if wrote else 'already there'}")
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
    return StepResult("; ".join(notes))


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


SIGNATURE_COPIER = StepInfo(
    "copy-signatures",
    copy_signatures,
    reads=("source .sig, .att, referrers",),
    writes=("target .sig, .att, referrers",),
    visible=True,
)
