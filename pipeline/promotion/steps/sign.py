"""``sign``: our signature of the target repository and digest, appended to the target's
``.sig`` in cosign's format, so admission controllers running cosign's code accept it."""

from __future__ import annotations

from pipeline.errors import SigningError
from pipeline.promotion.steps._contract import StepContext, StepInfo, StepResult
from pipeline.promotion.steps._cosign import has_layer, layers, short, signature_of
from pipeline.registry import update_artifact
from pipeline.signing import (
    append_signature,
    load_private_key,
    sign_payload,
    signature_tag,
    simple_signing_payload,
    verify_payload,
)
from pipeline.types import content_digest

__all__ = ["IMAGE_SIGNER", "sign_image"]


def sign_image(ctx: StepContext) -> StepResult:
    """Add our signature of the target repository and digest to the target's ``.sig``."""
    signing = ctx.config.signing
    if signing is None:
        raise SigningError(
            f"projects.{ctx.promotion.project}.environments.{ctx.env.name}.sign: "
            "no signing key configured (signing.key_file)"
        )
    key = load_private_key(signing.key_file, signing.password())
    public = key.public_key()
    digest, client, repository = ctx.promotion.digest, ctx.client(ctx.target), ctx.target.repository
    reference = f"{ctx.target.registry.host}/{repository}"
    payload = simple_signing_payload(reference, digest)
    payload_digest, tag = content_digest(payload), signature_tag(digest)
    signature = sign_payload(key, payload)
    ours: list[str] = [signature]

    def ours_in(raw: bytes) -> str | None:
        """A layer with our payload that our key verifies (a retried step finds its work done)."""
        for layer in layers(raw):
            found = signature_of(layer)
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

    wrote = update_artifact(
        ctx.config.data_dir, client, repository, tag, change, lambda raw: has_layer(raw, payload_digest, ours[0])
    )
    return StepResult(
        f"{'signed' if wrote else 'already signed'} {reference}@{digest} with {signing.key_file} "
        f"({tag}, layer {short(payload_digest)})"
    )


IMAGE_SIGNER = StepInfo("sign", sign_image, reads=("signing key", "target .sig"), writes=("target .sig",), visible=True)
