"""Read-modify-write of a tagged artifact manifest (cosign's ``.sig`` and ``.att``).

Such a tag is shared by every signer of an image and the registry has no compare-and-swap, so
an update is: read, change, upload, PUT, read back, and go again if someone else's PUT
replaced ours. Writers on one host are serialized by a file lock; between hosts the read-back
narrows the race but cannot close it (OCI referrers would).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.errors import RegistryError
from pipeline.registry._client import Manifest, RegistryClient

__all__ = ["Change", "update_artifact"]

ATTEMPTS = 3
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

Change = Callable[[bytes | None], tuple[bytes | None, list[tuple[str, bytes]]]]


@contextlib.contextmanager
def _host_lock(data_dir: Path, client: RegistryClient, repository: str, tag: str) -> Iterator[None]:
    """An exclusive ``flock`` under ``data_dir/locks``: workers sharing a data dir (every
    SQLite deployment) never interleave their read-modify-writes of one tag."""
    name = hashlib.sha256(f"{client.host}/{repository}:{tag}".encode()).hexdigest()[:32]
    directory = Path(data_dir) / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"sig-{name}.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update_artifact(
    data_dir: Path, client: RegistryClient, repository: str, tag: str, change: Change, present: Callable[[bytes], bool]
) -> bool:
    """Apply ``change`` to the tag's manifest until a read-back shows ``present``; True if it wrote.

    ``change`` gets the current bytes (None: no tag yet) and returns the new OCI manifest
    (None: nothing to do) and the blobs (digest, bytes) it needs.
    """
    with _host_lock(data_dir, client, repository, tag):
        wrote = False
        for attempt in range(ATTEMPTS):
            current = client.find(repository, tag)
            manifest, blobs = change(current.raw if current else None)
            if manifest is None:
                return wrote
            for digest, data in blobs:
                if not client.blob_exists(repository, digest):
                    client.upload_blob(repository, digest, len(data), [data])
            digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
            client.put_manifest(repository, tag, Manifest(manifest, _OCI_MANIFEST, digest))
            wrote = True
            time.sleep(random.uniform(0.05, 0.2))  # let a racing PUT land before we look
            after = client.find(repository, tag)
            if after is not None and present(after.raw):
                return wrote
            time.sleep(random.uniform(0.1, 0.4) * (attempt + 1))
    raise RegistryError(
        f"registry {client.host}: {repository}:{tag} was rewritten by someone else "
        f"{ATTEMPTS} times while we updated it; try again"
    )
