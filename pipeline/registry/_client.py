"""A focused OCI distribution client on httpx: what this service needs, with digests checked."""

from __future__ import annotations

import hashlib
import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from pipeline.config import RegistryConfig
from pipeline.errors import NotFound, RegistryError
from pipeline.registry._auth import RegistryAuth, TokenCache

__all__ = ["MANIFEST_TYPES", "Manifest", "ManifestInfo", "RegistryClient"]

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_API_HOSTS = {"docker.io": "registry-1.docker.io", "index.docker.io": "registry-1.docker.io"}


@dataclass(frozen=True)
class ManifestInfo:
    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """A manifest's exact bytes (its digest is computed from them) and what it lists."""

    raw: bytes
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.raw)
        except ValueError:
            raise RegistryError(f"manifest {self.digest} is not JSON") from None
        return data if isinstance(data, dict) else {}

    def layers(self) -> list[dict[str, Any]]:
        """Layer descriptors (digest, size, media type) of an image manifest; [] for an index."""
        return [
            {"digest": layer.get("digest"), "size": layer.get("size"), "media_type": layer.get("mediaType")}
            for layer in self.json().get("layers", []) if isinstance(layer, dict)
        ]


@contextmanager
def _map_errors(host: str) -> Iterator[None]:
    """Transport failures become ``RegistryError`` (retryable) naming the registry."""
    try:
        yield
    except httpx.TimeoutException:
        raise RegistryError(f"registry {host} did not answer in time") from None
    except httpx.TransportError as exc:
        raise RegistryError(f"cannot reach registry {host}: {exc}") from None


class RegistryClient:
    """One registry, one connection pool; auth negotiated per operation's scopes."""

    def __init__(self, config: RegistryConfig, *, timeout: float = 30, cache: TokenCache | None = None) -> None:
        self.host = config.host
        scheme = "http" if config.insecure else "https"
        self.base_url = f"{scheme}://{_API_HOSTS.get(self.host, self.host)}"
        self._credentials = config.credentials()
        self._cache = cache or TokenCache()
        verify: ssl.SSLContext | bool = True
        if config.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(config.ca_file))
        self._http = httpx.Client(base_url=self.base_url, verify=verify, timeout=timeout,
                                  headers={"User-Agent": "pipeline/0.1"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _auth(self, *scopes: str) -> RegistryAuth:
        return RegistryAuth(self.host, self._credentials, scopes, self._cache)

    def ping(self) -> None:
        """Check the registry answers the v2 API and accepts our credentials."""
        with _map_errors(self.host):
            response = self._http.get("/v2/", auth=self._auth())
        if response.status_code != 200:
            raise RegistryError(f"registry {self.host}: GET /v2/ answered {response.status_code}")

    def manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest as raw bytes, its digest checked against what the registry claims."""
        path = f"/v2/{repository}/manifests/{reference}"
        with _map_errors(self.host):
            response = self._http.get(path, headers={"Accept": ", ".join(MANIFEST_TYPES)},
                                      auth=self._auth(f"repository:{repository}:pull"))
        if response.status_code == 404:
            raise NotFound(f"{self.host}/{repository}:{reference} does not exist")
        if response.status_code != 200:
            raise RegistryError(f"registry {self.host}: manifest {repository}:{reference} "
                                f"answered {response.status_code}")
        digest = "sha256:" + hashlib.sha256(response.content).hexdigest()
        claimed = response.headers.get("docker-content-digest")
        if claimed and claimed != digest:
            raise RegistryError(f"registry {self.host}: manifest {repository}:{reference} has digest {digest} "
                                f"but the registry says {claimed}")
        if reference.startswith("sha256:") and reference != digest:
            raise RegistryError(f"registry {self.host} returned a manifest with digest {digest} for {reference}")
        return Manifest(response.content, response.headers.get("content-type", ""), digest)

    def manifest_info(self, repository: str, reference: str) -> ManifestInfo:
        """Digest, media type and size of a manifest as the registry reports them."""
        path = f"/v2/{repository}/manifests/{reference}"
        headers = {"Accept": ", ".join(MANIFEST_TYPES)}
        with _map_errors(self.host):
            response = self._http.head(path, headers=headers, auth=self._auth(f"repository:{repository}:pull"))
            if response.status_code == 200 and not response.headers.get("docker-content-digest"):
                response = self._http.get(path, headers=headers, auth=self._auth(f"repository:{repository}:pull"))
        if response.status_code == 404:
            raise NotFound(f"{self.host}/{repository}:{reference} does not exist")
        if response.status_code != 200:
            raise RegistryError(f"registry {self.host}: manifest {repository}:{reference} "
                                f"answered {response.status_code}")
        digest = response.headers.get("docker-content-digest")
        if not digest:
            digest = "sha256:" + hashlib.sha256(response.content).hexdigest()
        return ManifestInfo(digest, response.headers.get("content-type", ""),
                            int(response.headers.get("content-length") or len(response.content)))
