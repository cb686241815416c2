"""Registry access without a Docker daemon (OCI distribution API over httpx)."""

from pipeline.registry._artifacts import update_artifact
from pipeline.registry._auth import Challenge, RegistryAuth, TokenCache, parse_challenge
from pipeline.registry._client import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    Manifest,
    ManifestInfo,
    RegistryClient,
)
from pipeline.registry._copy import CopyReport, copy_image
from pipeline.registry._credentials import Credentials, docker_config_credentials, resolve_credentials
from pipeline.registry._delete import (
    ArtifactDeletes,
    RegistryTraits,
    TagDelete,
    delete_manifest,
    delete_signed_artifacts,
    delete_tag,
    list_tags,
)
from pipeline.registry._retry import RateLimiter, RetryTransport, retry_after_seconds

__all__ = [
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "ArtifactDeletes",
    "Challenge",
    "CopyReport",
    "Credentials",
    "Manifest",
    "ManifestInfo",
    "RateLimiter",
    "RegistryAuth",
    "RegistryClient",
    "RegistryTraits",
    "RetryTransport",
    "TagDelete",
    "TokenCache",
    "copy_image",
    "delete_manifest",
    "delete_signed_artifacts",
    "delete_tag",
    "docker_config_credentials",
    "list_tags",
    "parse_challenge",
    "resolve_credentials",
    "retry_after_seconds",
    "update_artifact",
]
