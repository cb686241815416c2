"""A focused OCI distribution client on httpx: what this service needs, with digests checked.

Manifests travel as raw bytes (their digest is the hash of those bytes, so re-serializing one
would change the image); blobs travel as streams, hashed on the way, never held in memory.
"""

from __future__ import annotations

import functools
import hashlib
import json
import ssl
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from pipeline.config import RegistryConfig
from pipeline.errors import (
    NotFound,
    PipelineError,
    RegistryAuthError,
    RegistryError,
    RegistryRefused,
)
from pipeline.registry._auth import RegistryAuth, TokenCache
from pipeline.registry._credentials import Credentials, resolve_credentials
from pipeline.registry._retry import RetryTransport, shared_limiter
from pipeline.registry._wire import BULK, WireTransport

__all__ = ["INDEX_TYPES", "MANIFEST_TYPES", "Manifest", "ManifestInfo", "RegistryClient"]

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_TYPES = (
    *INDEX_TYPES,
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

    @property
    def kind(self) -> str:
        """The media type the bytes declare, else the one the registry sent."""
        return str(self.json().get("mediaType") or self.media_type)

    @property
    def is_index(self) -> bool:
        data = self.json()
        return self.kind in INDEX_TYPES or ("manifests" in data and "layers" not in data)

    def children(self) -> list[dict[str, Any]]:
        """Descriptors of the manifests an index lists (platform images, attestations)."""
        return [m for m in self.json().get("manifests", []) if isinstance(m, dict)] if self.is_index else []

    def blobs(self) -> list[dict[str, Any]]:
        """Descriptors of the config and layers an image manifest needs, raw as written."""
        data = self.json()
        found = [data["config"]] if isinstance(data.get("config"), dict) else []
        found += [layer for layer in data.get("layers", []) if isinstance(layer, dict)]
        return found

    def layers(self) -> list[dict[str, Any]]:
        """Layer descriptors (digest, size, media type) of an image manifest; [] for an index."""
        return [
            {"digest": layer.get("digest"), "size": layer.get("size"), "media_type": layer.get("mediaType")}
            for layer in self.json().get("layers", [])
            if isinstance(layer, dict)
        ]


def _error_words(error: dict[str, Any]) -> str:
    """``CODE: message``, plus the detail when it is words: distribution 3 says there why it
    refused (``mediaType in manifest should be ...``) where 2.8 sent ``{}``."""
    words = f"{error.get('code', '?')}: {error.get('message', '')}".strip()
    detail = error.get("detail")
    return f"{words} ({detail})" if isinstance(detail, str) and detail.strip() else words


def _registry_message(response: httpx.Response) -> str:
    """The registry's own words (``{"errors": [{"code", "message"}]}``), for the user."""
    try:
        response.read()
        errors = response.json().get("errors") or []
        parts = [_error_words(e) for e in errors if isinstance(e, dict)]
    except (ValueError, AttributeError, httpx.HTTPError):
        parts = []
    return "; ".join(parts) or response.reason_phrase or "no detail"


@contextmanager
def _map_errors(host: str) -> Iterator[None]:
    """Transport failures become ``RegistryError`` (retryable) naming the registry."""
    try:
        yield
    except httpx.TimeoutException:
        raise RegistryError(f"registry {host} did not answer in time") from None
    except httpx.TransportError as exc:
        raise RegistryError(f"cannot reach registry {host}: {exc}") from None


class _StreamingAuth(httpx.Auth):
    """Drives ``RegistryAuth`` without reading every response body: httpx would otherwise read a
    whole blob into memory before handing the stream back. Only a challenge (401) and the token
    service's answer are read. Once a registry asked for basic auth, the password is sent up
    front, since a streamed upload cannot be sent a second time after a 401."""

    def __init__(self, inner: RegistryAuth, hints: dict[str, str]) -> None:
        self.inner, self.hints = inner, hints

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.hints.get("scheme") == "basic" and "authorization" not in request.headers:
            request.headers["Authorization"] = self.hints["basic"]
        flow = self.inner.auth_flow(request)
        sent = next(flow)
        while True:
            response = yield sent
            if response.status_code == 401 or sent is not request:
                response.read()
            try:
                sent = flow.send(response)
            except StopIteration:
                break
            if sent is request and sent.headers.get("authorization", "").startswith("Basic "):
                self.hints.update(scheme="basic", basic=sent.headers["authorization"])


@functools.lru_cache(maxsize=32)
def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Loading a CA bundle costs ~50 ms; a promotion opens clients often, so contexts are shared."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else httpx.create_ssl_context()


def _digest_of(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _hashed(chunks: Iterable[bytes], digest: str, size: int, where: str) -> Iterator[bytes]:
    """Pass chunks through, then refuse (before the upload is committed) if they are not the blob."""
    algorithm, _, expected = digest.partition(":")
    if algorithm != "sha256":
        raise RegistryRefused(f"{where}: digest algorithm {algorithm!r} is not supported")
    hasher, seen = hashlib.sha256(), 0
    for chunk in chunks:
        hasher.update(chunk)
        seen += len(chunk)
        yield chunk
    if seen != size or hasher.hexdigest() != expected:
        raise RegistryError(
            f"{where}: received {seen} bytes hashing to sha256:{hasher.hexdigest()}, expected {size} bytes of {digest}"
        )


class RegistryClient:
    """One registry, one connection pool; auth negotiated per operation's scopes."""

    def __init__(
        self,
        config: RegistryConfig,
        *,
        timeout: float = 30,
        cache: TokenCache | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.host = config.host
        self.config = config
        scheme = "http" if config.insecure else "https"
        self.base_url = f"{scheme}://{_API_HOSTS.get(self.host, self.host)}"
        self._credentials = credentials if credentials is not None else resolve_credentials(config)
        self._cache = cache or TokenCache()
        self._hints: dict[str, str] = {}
        verify = _tls_context(str(config.ca_file) if config.ca_file else None) if not config.insecure else False
        limiter = shared_limiter(self.host, config.requests_per_second) if config.requests_per_second else None
        transport = RetryTransport(WireTransport(verify), limiter=limiter)
        self._http = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=10),
            headers={"User-Agent": "pipeline/0.1"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _auth(self, *scopes: str) -> httpx.Auth:
        return _StreamingAuth(RegistryAuth(self.host, self._credentials, scopes, self._cache), self._hints)

    def _pull(self, repository: str) -> httpx.Auth:
        return self._auth(f"repository:{repository}:pull")

    def _push(self, repository: str, *more: str) -> httpx.Auth:
        return self._auth(f"repository:{repository}:pull,push", *more)

    def _fail(self, response: httpx.Response, what: str) -> PipelineError:
        """The error for an unexpected answer: 4xx are final, 5xx worth another try."""
        detail = f"registry {self.host}: {what} answered {response.status_code} ({_registry_message(response)})"
        if response.status_code in (401, 403):
            return RegistryAuthError(detail)
        if response.status_code == 404:
            return NotFound(detail)
        if 400 <= response.status_code < 500 and response.status_code != 429:
            return RegistryRefused(detail)
        return RegistryError(detail)

    def ping(self) -> None:
        """Check the registry answers the v2 API and accepts our credentials."""
        with _map_errors(self.host):
            response = self._http.get("/v2/", auth=self._auth())
        if response.status_code != 200:
            raise RegistryError(f"registry {self.host}: GET /v2/ answered {response.status_code}")

    # -- manifests ---------------------------------------------------------------------------

    def manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest as raw bytes, its digest checked against what the registry claims."""
        path = f"/v2/{repository}/manifests/{reference}"
        with _map_errors(self.host):
            response = self._http.get(path, headers={"Accept": ", ".join(MANIFEST_TYPES)}, auth=self._pull(repository))
        if response.status_code == 404:
            raise NotFound(f"{self.host}/{repository}:{reference} does not exist")
        if response.status_code != 200:
            raise self._fail(response, f"manifest {repository}:{reference}")
        digest = _digest_of(response.content)
        claimed = response.headers.get("docker-content-digest")
        if claimed and claimed != digest:
            raise RegistryError(
                f"registry {self.host}: manifest {repository}:{reference} has digest {digest} "
                f"but the registry says {claimed}"
            )
        if reference.startswith("sha256:") and reference != digest:
            raise RegistryError(f"registry {self.host} returned a manifest with digest {digest} for {reference}")
        return Manifest(response.content, response.headers.get("content-type", ""), digest)

    def manifest_info(self, repository: str, reference: str) -> ManifestInfo:
        """Digest, media type and size of a manifest as the registry reports them."""
        path = f"/v2/{repository}/manifests/{reference}"
        headers = {"Accept": ", ".join(MANIFEST_TYPES)}
        with _map_errors(self.host):
            response = self._http.head(path, headers=headers, auth=self._pull(repository))
            if response.status_code == 200 and not response.headers.get("docker-content-digest"):
                response = self._http.get(path, headers=headers, auth=self._pull(repository))
        if response.status_code == 404:
            raise NotFound(f"{self.host}/{repository}:{reference} does not exist")
        if response.status_code != 200:
            raise self._fail(response, f"manifest {repository}:{reference}")
        digest = response.headers.get("docker-content-digest")
        if not digest:
            digest = _digest_of(response.content)
        return ManifestInfo(
            digest,
            response.headers.get("content-type", ""),
            int(response.headers.get("content-length") or len(response.content)),
        )

    def find(self, repository: str, reference: str) -> Manifest | None:
        """``manifest``, or ``None`` when the registry has no such tag or digest."""
        try:
            return self.manifest(repository, reference)
        except NotFound:
            return None

    def find_manifest(self, repository: str, reference: str) -> ManifestInfo | None:
        """``manifest_info``, or ``None`` when the registry has no such tag or digest."""
        try:
            return self.manifest_info(repository, reference)
        except NotFound:
            return None

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        """Store the exact bytes under a digest or tag; the registry must agree on the digest."""
        media_type = manifest.kind
        with _map_errors(self.host):
            response = self._http.put(
                f"/v2/{repository}/manifests/{reference}",
                content=manifest.raw,
                headers={"Content-Type": media_type},
                auth=self._push(repository),
            )
        if response.status_code not in (200, 201):
            raise self._fail(response, f"storing manifest {repository}:{reference}")
        stored = response.headers.get("docker-content-digest") or manifest.digest
        if stored != manifest.digest:
            raise RegistryError(
                f"registry {self.host} stored {repository}:{reference} as {stored}, not {manifest.digest}"
            )
        return stored

    def tag(self, repository: str, tag: str, manifest: Manifest) -> None:
        """Point ``tag`` at a manifest already stored by digest, and read it back: the registry
        must now say that digest for the tag."""
        self.put_manifest(repository, tag, manifest)
        found = self.manifest_info(repository, tag).digest
        if found != manifest.digest:
            raise RegistryError(
                f"{self.host}/{repository}:{tag} points at {found} after tagging, not {manifest.digest}"
            )

    def referrers(self, repository: str, digest: str) -> tuple[list[dict[str, Any]], bool]:
        """Descriptors of the manifests whose ``subject`` is ``digest``, and whether the registry
        keeps them itself (the OCI 1.1 referrers API) rather than in the fallback tag.

        A registry without the API (distribution 2.8 and 3.1: ``404 page not found``) has
        writers such as cosign 3 and go-containerregistry keep an image index under the tag
        ``sha256-<hex>`` instead; that index is read then, and an empty list means neither has
        any. A registry with the API must be told nothing: it indexes a pushed referrer itself.
        """
        index_type = INDEX_TYPES[0]
        path = f"/v2/{repository}/referrers/{digest}"
        with _map_errors(self.host):
            response = self._http.get(path, headers={"Accept": index_type}, auth=self._pull(repository))
        kind = response.headers.get("content-type", "").split(";")[0].strip()
        if response.status_code == 200 and kind == index_type:
            return Manifest(response.content, kind, _digest_of(response.content)).children(), True
        if response.status_code not in (400, 404, 405) and response.status_code != 200:
            raise self._fail(response, f"referrers of {repository}@{digest}")
        fallback = self.find(repository, digest.replace(":", "-", 1))
        return (fallback.children() if fallback is not None else []), False

    # -- blobs -------------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: str) -> bool:
        with _map_errors(self.host):
            response = self._http.head(
                f"/v2/{repository}/blobs/{digest}", auth=self._pull(repository), follow_redirects=True
            )
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._fail(response, f"HEAD blob {repository}@{digest}")

    def read_blob(self, repository: str, digest: str, max_size: int = 4 << 20) -> bytes:
        """A small blob (a config, a signature payload) in memory, its digest checked."""
        with self.open_blob(repository, digest) as (size, chunks):
            if size > max_size:
                raise RegistryRefused(
                    f"{self.host}/{repository}@{digest} is {size} bytes; "
                    f"refusing to read more than {max_size} into memory"
                )
            return b"".join(_hashed(chunks, digest, size, f"{self.host}/{repository}@{digest}"))

    @contextmanager
    def open_blob(self, repository: str, digest: str) -> Iterator[tuple[int, Iterator[bytes]]]:
        """(size, chunks) of a blob, streamed; redirects to storage are followed without our auth."""
        with (
            _map_errors(self.host),
            self._http.stream(
                "GET",
                f"/v2/{repository}/blobs/{digest}",
                auth=self._pull(repository),
                follow_redirects=True,
                extensions=BULK,
            ) as response,
        ):
            if response.status_code == 404:
                raise NotFound(f"{self.host}/{repository} has no blob {digest}")
            if response.status_code != 200:
                raise self._fail(response, f"blob {repository}@{digest}")
            size = int(response.headers.get("content-length", -1))
            yield size, self._raw_chunks(response)

    def _raw_chunks(self, response: httpx.Response) -> Iterator[bytes]:
        # the transport's own reads (``_wire.READ_SIZE``) as they come: re-chunking only adds copies
        with _map_errors(self.host):
            yield from response.iter_raw()

    def start_upload(self, repository: str, *, mount: str | None = None, mount_from: str | None = None) -> str | None:
        """Begin an upload and return its location; ``None`` when the blob was mounted instead."""
        params = {"mount": mount, "from": mount_from} if mount and mount_from else {}
        auth = self._push(repository, f"repository:{mount_from}:pull") if mount_from else self._push(repository)
        with _map_errors(self.host):
            response = self._http.post(f"/v2/{repository}/blobs/uploads/", params=params, auth=auth)
        if response.status_code == 201 and mount:
            return None
        if response.status_code != 202 or "location" not in response.headers:
            raise self._fail(response, f"starting an upload to {repository}")
        return str(response.headers["location"])

    def upload_blob(
        self, repository: str, digest: str, size: int, chunks: Iterable[bytes], *, location: str | None = None
    ) -> None:
        """Stream a blob into the registry, hashing it on the way.

        With the registry's ``chunk_size_mb`` set the blob goes in PATCH chunks (for registries
        that cap request sizes); otherwise in one streamed PUT, the fewest round trips.
        """
        location = location or self.start_upload(repository)
        assert location is not None
        body = _hashed(chunks, digest, size, f"upload of {digest} to {self.host}/{repository}")
        if self.config.chunk_size_mb:
            location = self._patch_chunks(repository, location, body, self.config.chunk_size_mb << 20)
            content: Iterable[bytes] | bytes = b""
            headers = {"Content-Length": "0"}
        else:
            content, headers = body, {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        with _map_errors(self.host):
            # httpx's params= would replace the query, and the location's own query (_state) matters
            url = httpx.URL(location).copy_merge_params({"digest": digest})
            response = self._http.put(
                url, content=content, headers=headers, auth=self._push(repository), extensions=BULK
            )
        if response.status_code != 201:
            raise self._fail(response, f"upload of {digest} to {repository}")

    def _patch_chunks(self, repository: str, location: str, body: Iterator[bytes], chunk_size: int) -> str:
        offset, buffer = 0, bytearray()

        def send(data: bytes) -> str:
            end = offset + len(data) - 1
            with _map_errors(self.host):
                response = self._http.patch(
                    location,
                    content=data,
                    auth=self._push(repository),
                    headers={"Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{end}"},
                    extensions=BULK,
                )
            if response.status_code != 202:
                raise self._fail(response, f"chunk {offset}-{end} of an upload to {repository}")
            return str(response.headers.get("location", location))

        for chunk in body:
            buffer += chunk
            while len(buffer) >= chunk_size:
                location = send(bytes(buffer[:chunk_size]))
                offset += chunk_size
                del buffer[:chunk_size]
        if buffer:
            location = send(bytes(buffer))
        return location

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Link a blob from another repository of this registry; ``False`` if the registry declined.

        A declined mount still opened an upload session; it is left to expire, as Docker does.
        """
        return self.start_upload(repository, mount=digest, mount_from=from_repository) is None
