"""The build's provenance: an in-toto statement with a SLSA v1 predicate for the digest, and,
with a signing key, signed into the digest's ``.att`` by ``signing.attach_provenance`` (beside
promotion's signing)."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from pipeline import builder, signing
from pipeline.config import Config, ProjectConfig, SigningConfig
from pipeline.errors import SigningError
from pipeline.registry import RegistryClient
from pipeline.signing import (
    load_private_key,
    provenance_statement,
)
from pipeline.store import Build, utcnow

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


def attach_provenance(
    config: Config, project: ProjectConfig, digest: str, statement: dict[str, Any], key: ec.EllipticCurvePrivateKey
) -> str:
    """The statement signed into the digest's ``.att`` in the project's build repository."""
    with RegistryClient(config.registries[project.image.registry]) as client:
        return signing.attach_provenance(client, project.image.repository, digest, statement, key, config.data_dir)
