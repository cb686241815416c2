"""The build's provenance: an in-toto statement with a SLSA v1 predicate for the digest, and,
with a signing key, its signed DSSE envelope appended to the digest's ``.att``."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from pipeline import builder
from pipeline.config import Config, ProjectConfig, SigningConfig
from pipeline.errors import NotFound, SigningError
from pipeline.registry import RegistryClient, update_artifact
from pipeline.signing import (
    DSSE_MEDIA_TYPE,
    append_attestation,
    attestation_tag,
    dsse_envelope,
    load_private_key,
    provenance_statement,
    statement_bytes,
    verify_envelope,
)
from pipeline.store import Build, utcnow
from pipeline.types import content_digest

__all__ = ["attach_provenance", "load_signing_key", "provenance_for"]


def load_signing_key(signing: SigningConfig) -> ec.EllipticCurvePrivateKey:
    try:
        return load_private_key(signing.key_file, signing.password())
    except SigningError as exc:
        raise SigningError(f"provenance: cannot sign with signing.key_file {signing.key_file}: {exc.message}") from None


def provenance_for(
    project: ProjectConfig, build: Build, spec: builder.BuildSpec, engine: builder.Engine, digest: str
) -> dict[str, Any]:
    """The statement for the digest: only the recorded build-args (``spec.args``) go in, never
    ``spec.secrets`` or anything else BuildKit was handed."""
    options = project.build_for(build.branch)
    now = utcnow()
    return provenance_statement(
        repository=f"{spec.registry}/{project.image.repository}",
        digest=digest,
        source_repo=project.repo,
        ref=build.ref,
        commit=build.commit,
        context=options.context,
        dockerfile=options.dockerfile,
        target=spec.target,
        build_args=spec.args,
        platforms=spec.platforms,
        build_id=build.id,
        started_on=build.started_at or now,
        finished_on=now,
        engine=engine.name,
        builder_mode=engine.mode,
    )


def _dsse_layers(raw: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(raw)
    except ValueError:
        return []  # append_attestation refuses it with a clear message
    layers = data.get("layers") if isinstance(data, dict) else None
    return [layer for layer in layers or [] if isinstance(layer, dict) and layer.get("mediaType") == DSSE_MEDIA_TYPE]


def attach_provenance(
    config: Config, project: ProjectConfig, digest: str, statement: dict[str, Any], key: ec.EllipticCurvePrivateKey
) -> str:
    """Sign the statement and append it to the digest's ``.att`` in the project's repository.

    The same read-modify-write (lock per tag, read back) as promotion signing. A retried build
    whose signed statement is already there writes nothing. Registry errors propagate.
    """
    repository, tag = project.image.repository, attestation_tag(digest)
    envelope = dsse_envelope(statement, key)
    layer_digest = content_digest(envelope)
    payload, public = statement_bytes(statement), key.public_key()
    with RegistryClient(config.registries[project.image.registry]) as client:

        def ours(raw: bytes) -> bool:
            """A layer whose envelope our key signed over this very statement."""
            for layer in _dsse_layers(raw):
                if layer.get("digest") == layer_digest:
                    return True
                try:
                    blob = client.read_blob(repository, str(layer.get("digest")))
                except NotFound:
                    continue
                found = verify_envelope(blob, [public])
                if found is not None and statement_bytes(found) == payload:
                    return True
            return False

        def change(existing: bytes | None) -> tuple[bytes | None, list[tuple[str, bytes]]]:
            if existing is not None and ours(existing):
                return None, []
            update = append_attestation(existing, envelope)
            if not update.changed:
                return None, []
            return update.manifest, [(blob.digest, blob.data) for blob in update.uploads]

        def present(raw: bytes) -> bool:
            return any(layer.get("digest") == layer_digest for layer in _dsse_layers(raw))

        wrote = update_artifact(config.data_dir, client, repository, tag, change, present)
    where = f"{client.host}/{repository}:{tag}"
    return f"provenance signed into {where}" if wrote else f"provenance already in {where}"
