"""Test data and a served app that the promotion, CLI and web-page tests share.

Promotion tests start after the build: the build rows are written straight into the database
for images that skopeo pushed into a real registry; the promotions are worked by real workers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from pipeline.config import Config
from pipeline.registry import Manifest, RegistryClient
from pipeline.store import Database, builds, projects
from tests.services import free_port
from workers.promotion_worker import PromotionWorker

__all__ = ["push_image", "push_signatures", "record_build", "serve_with_promoter", "succeeded_builds"]


def succeeded_builds(
    db: Database,
    config: Config,
    project: str,
    digests: Sequence[str],
    *,
    first: int = 1,
    logs: Callable[[int], list[str]] | None = None,
) -> list[int]:
    """One succeeded build of ``main`` per digest (commit ``f"{n + first:x}" * 40``, the log lines
    ``logs(n)``); their ids."""
    ids = []
    with db.session() as session:
        projects.sync_projects(session, config.projects)
        for n, digest in enumerate(digests):
            build_id = builds.queue_build(
                session,
                project=project,
                commit=f"{n + first:x}" * 40,
                ref="refs/heads/main",
                branch="main",
                trigger="test",
            )
            builds.record_progress(session, build_id, status="succeeded", digest=digest)
            if logs is not None:
                builds.append_logs(session, build_id, logs(n))
            ids.append(build_id)
    return ids


_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _blob(client: RegistryClient, repository: str, data: bytes, media_type: str) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if not client.blob_exists(repository, digest):
        client.upload_blob(repository, digest, len(data), [data])
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _put(client: RegistryClient, repository: str, body: dict[str, object], tags: Sequence[str] = ()) -> str:
    raw = json.dumps(body, separators=(",", ":")).encode()
    manifest = Manifest(raw, _OCI_MANIFEST, "sha256:" + hashlib.sha256(raw).hexdigest())
    client.put_manifest(repository, manifest.digest, manifest)
    for tag in tags:
        client.put_manifest(repository, tag, manifest)
    return manifest.digest


def push_image(client: RegistryClient, repository: str, seed: str, tags: Sequence[str] = ()) -> str:
    """A tiny OCI image unique to ``seed`` (two small blobs), pushed by digest and tagged; its digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}, "seed": seed})
    body = {
        "schemaVersion": 2,
        "mediaType": _OCI_MANIFEST,
        "config": _blob(client, repository, config.encode(), "application/vnd.oci.image.config.v1+json"),
        "layers": [_blob(client, repository, f"layer of {seed}".encode(), "application/vnd.oci.image.layer.v1.tar")],
    }
    return _put(client, repository, body, tags)


def push_signatures(client: RegistryClient, repository: str, digest: str) -> dict[str, str]:
    """What signers leave beside an image: a cosign ``.sig`` and ``.att`` tag, and a cosign 3
    style referrer (``subject`` = the image) listed in the ``sha256-<hex>`` fallback index;
    name -> manifest digest."""
    empty = _blob(client, repository, b"{}", "application/vnd.oci.empty.v1+json")
    image = client.manifest_info(repository, digest)
    subject = {"mediaType": image.media_type or _OCI_MANIFEST, "digest": digest, "size": image.size}
    hex_tag = digest.replace(":", "-", 1)
    made = {}
    for suffix in ("sig", "att"):
        layer = _blob(
            client, repository, f"{suffix} of {digest}".encode(), "application/vnd.dev.cosign.simplesigning.v1+json"
        )
        made[suffix] = _put(
            client,
            repository,
            {"schemaVersion": 2, "mediaType": _OCI_MANIFEST, "config": empty, "layers": [layer]},
            [f"{hex_tag}.{suffix}"],
        )
    bundle = _blob(client, repository, f"bundle of {digest}".encode(), "application/vnd.dev.sigstore.bundle.v0.3+json")
    body = {
        "schemaVersion": 2,
        "mediaType": _OCI_MANIFEST,
        "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "config": empty,
        "layers": [bundle],
        "subject": subject,
    }
    made["referrer"] = _put(client, repository, body)
    referrer = client.manifest_info(repository, made["referrer"])
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": _OCI_MANIFEST,
                "digest": made["referrer"],
                "size": referrer.size,
                "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            }
        ],
    }
    raw = json.dumps(index, separators=(",", ":")).encode()
    fallback = Manifest(raw, "application/vnd.oci.image.index.v1+json", "sha256:" + hashlib.sha256(raw).hexdigest())
    client.put_manifest(repository, hex_tag, fallback)
    made["fallback"] = fallback.digest
    return made


def record_build(
    db: Database,
    project: str,
    commit: str,
    branch: str | None,
    digest: str,
    *,
    tags: Sequence[str] = (),
    age: dt.timedelta = dt.timedelta(0),
    ref: str | None = None,
) -> int:
    """A succeeded build row of ``commit`` that made ``digest``, finished ``age`` ago; its id."""
    when = dt.datetime.now(dt.UTC) - age
    with db.session() as session:
        build_id = builds.queue_build(
            session,
            project=project,
            commit=commit,
            ref=ref or f"refs/heads/{branch}",
            branch=branch,
            trigger="test",
        )
        builds.record_progress(
            session, build_id, status="succeeded", digest=digest, tags=list(tags), created_at=when, finished_at=when
        )
    return build_id


@contextmanager
def serve_with_promoter(app: FastAPI, db: Database, config: Config, name: str) -> Iterator[str]:
    """``app`` on a real port (uvicorn in a thread) with a promotion worker beside it; its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    worker = PromotionWorker(db, config, name=name)
    threads = [threading.Thread(target=server.run), threading.Thread(target=worker.run_forever)]
    for thread in threads:
        thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        worker.stop()
        for thread in threads:
            thread.join(timeout=30)
