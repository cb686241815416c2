"""Registry access without a Docker daemon (OCI distribution API over httpx)."""

from pipeline.registry._auth import Challenge, RegistryAuth, TokenCache, parse_challenge
from pipeline.registry._client import MANIFEST_TYPES, ManifestInfo, RegistryClient

__all__ = [
    "MANIFEST_TYPES",
    "Challenge",
    "ManifestInfo",
    "RegistryAuth",
    "RegistryClient",
    "TokenCache",
    "parse_challenge",
]
