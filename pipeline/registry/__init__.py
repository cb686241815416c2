"""Registry access without a Docker daemon (OCI distribution API over httpx)."""

from pipeline.registry._auth import Challenge, RegistryAuth, TokenCache, parse_challenge
from pipeline.registry._client import MANIFEST_TYPES, Manifest, ManifestInfo, RegistryClient

__all__ = [
    "MANIFEST_TYPES",
    "Challenge",
    "Manifest",
    "ManifestInfo",
    "RegistryAuth",
    "RegistryClient",
    "TokenCache",
    "parse_challenge",
]
