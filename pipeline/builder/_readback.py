"""An image BuildKit pushed, read back from the registry as an OCI layout tar.

A BuildKit daemon pushes straight to the registry, so no engine holds the image for ``docker
save``; image insight reads this archive instead. Blobs are streamed into the tar (never held in
memory) and their digests checked on the way. For an index, the child image of the wanted
platform is taken (else the first image that is not an attestation).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import RegistryError
from pipeline.registry import Manifest, RegistryClient

__all__ = ["registry_archive"]


class _Stream(io.RawIOBase):
    """Chunks as a readable file, hashed as they pass."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._pending = chunks, b""
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        cut = len(self._pending) if size < 0 else size
        out, self._pending = self._pending[:cut], self._pending[cut:]
        self.hash.update(out)
        return out


def _child(client: RegistryClient, repository: str, index: Manifest, platform: str) -> Manifest:
    images = [c for c in index.children() if (c.get("platform") or {}).get("os") not in (None, "unknown")]
    wanted = platform.split("/")
    for child in images:
        found = child["platform"]
        if [found.get("os"), found.get("architecture")] == wanted[:2]:
            return client.manifest(repository, child["digest"])
    if not images:
        raise RegistryError(f"index {index.digest} in {repository} lists no platform image")
    return client.manifest(repository, images[0]["digest"])


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _add_blob(tar: tarfile.TarFile, client: RegistryClient, repository: str, descriptor: dict[str, Any]) -> None:
    digest = str(descriptor["digest"])
    with client.open_blob(repository, digest) as (size, chunks):
        info = tarfile.TarInfo("blobs/" + digest.replace(":", "/", 1))
        info.size = int(descriptor.get("size") or size)
        stream = _Stream(chunks)
        tar.addfile(info, stream)
    if "sha256:" + stream.hash.hexdigest() != digest:
        raise RegistryError(f"{client.host}/{repository}@{digest}: the blob read back does not match its digest")


def registry_archive(
    client: RegistryClient, repository: str, digest: str, dest: Path, platform: str = "linux/amd64"
) -> Path:
    """Write ``repository@digest`` (for an index: its ``platform`` image) to ``dest`` as an OCI layout tar."""
    manifest = client.manifest(repository, digest)
    if manifest.is_index:
        manifest = _child(client, repository, manifest, platform)
    index = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": manifest.kind, "digest": manifest.digest, "size": len(manifest.raw)}],
    }
    with tarfile.open(dest, "w") as tar:
        _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        _add_bytes(tar, "index.json", json.dumps(index).encode())
        _add_bytes(tar, "blobs/" + manifest.digest.replace(":", "/", 1), manifest.raw)
        for descriptor in manifest.blobs():
            _add_blob(tar, client, repository, descriptor)
    return dest
