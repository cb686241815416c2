"""Deleting from a registry: a tag, a manifest by digest, and the artifacts that sign or attest one.

Registries differ on tags: distribution 3 (and Harbor, Zot) delete a tag alone (202); 2.8
answers 400 to a delete by tag, and removes a manifest's tags only with the manifest. So the
caller deletes tags first and learns which were left for the manifest delete to take along.
A 405 means deletes are disabled (``storage.delete.enabled: false``): that is said once as
``DeletesDisabled``, never retried. What the deletes free is reclaimed by the registry's own
garbage collection, run by its operator (see the README).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import httpx

from pipeline.errors import DeletesDisabled
from pipeline.registry._client import RegistryClient, _map_errors

__all__ = [
    "ArtifactDeletes",
    "RegistryTraits",
    "TagDelete",
    "delete_manifest",
    "delete_signed_artifacts",
    "delete_tag",
    "list_tags",
]

TagDelete = Literal["deleted", "absent", "with-manifest"]


def _delete(client: RegistryClient, repository: str, reference: str) -> httpx.Response:
    auth = client._auth(f"repository:{repository}:pull,push,delete")
    with _map_errors(client.host):
        return client._http.delete(f"/v2/{repository}/manifests/{reference}", auth=auth)


def _disabled(client: RegistryClient, repository: str, what: str) -> DeletesDisabled:
    return DeletesDisabled(
        f"registry {client.host} refuses deletes ({what} in {repository} answered 405): enable them "
        "(distribution: storage.delete.enabled: true, or REGISTRY_STORAGE_DELETE_ENABLED=true; Harbor: "
        "a robot account with delete permission) or turn the cleanup off for this project "
        "(cleanup.registry.enabled: false)"
    )


def list_tags(client: RegistryClient, repository: str, page: int = 1000) -> set[str]:
    """Every tag of ``repository`` (``GET /v2/<name>/tags/list``, followed page by page through
    its ``Link`` header): one listing tells a whole cleanup run which images have a ``.sig``,
    ``.att`` or referrers fallback tag, instead of three lookups per image."""
    found: set[str] = set()
    url: str | None = f"/v2/{repository}/tags/list?n={page}"
    while url:
        with _map_errors(client.host):
            response = client._http.get(url, auth=client._pull(repository))
        if response.status_code == 404:
            return found
        if response.status_code != 200:
            raise client._fail(response, f"listing the tags of {repository}")
        found.update(t for t in response.json().get("tags") or [] if isinstance(t, str))
        link = response.links.get("next", {}).get("url")
        url = str(link) if link else None
    return found


def delete_tag(client: RegistryClient, repository: str, tag: str) -> TagDelete:
    """Remove ``tag`` alone; ``with-manifest`` when the registry deletes tags only with their
    manifest (distribution 2.8 answers 400), ``absent`` when there was no such tag."""
    response = _delete(client, repository, tag)
    if response.status_code in (200, 202, 204):
        return "deleted"
    if response.status_code == 404:
        return "absent"
    if response.status_code == 405:
        raise _disabled(client, repository, f"DELETE of tag {tag}")
    if response.status_code == 400:
        return "with-manifest"
    raise client._fail(response, f"deleting tag {repository}:{tag}")


def delete_manifest(client: RegistryClient, repository: str, digest: str) -> bool:
    """Remove the manifest ``digest`` (and, on every registry, the tags still pointing at it);
    False when it was already gone."""
    response = _delete(client, repository, digest)
    if response.status_code in (200, 202, 204):
        return True
    if response.status_code == 404:
        return False
    if response.status_code == 405:
        raise _disabled(client, repository, f"DELETE of manifest {digest}")
    raise client._fail(response, f"deleting manifest {repository}@{digest}")


@dataclass
class RegistryTraits:
    """What a cleanup run learnt of one registry and repository, to spare requests: whether it
    deletes a tag alone (2.8 does not), whether it serves the referrers API (2.8 does not), and
    its tags as listed at the start (``None``: not listed, look each up)."""

    tags_alone: bool = True
    referrers_api: bool | None = None
    tags: set[str] | None = None


@dataclass
class ArtifactDeletes:
    """What went with an image: cosign's ``.sig``/``.att`` tags and its OCI referrers."""

    tags: list[str] = field(default_factory=list)
    referrers: list[str] = field(default_factory=list)


def _artifact_tags(digest: str) -> list[str]:
    hex_form = digest.replace(":", "-", 1)
    return [f"{hex_form}.sig", f"{hex_form}.att", hex_form]  # the last: cosign 3's referrers fallback index


def delete_signed_artifacts(
    client: RegistryClient, repository: str, digest: str, traits: RegistryTraits | None = None
) -> ArtifactDeletes:
    """Delete the signatures and attestations of ``digest``: the manifests its ``.sig`` and
    ``.att`` tags point at, its referrers (the registry's API or the ``sha256-<hex>`` fallback
    tag cosign 3 writes) and that fallback index. Run before the image itself, so a failure
    leaves the image with its signatures rather than signatures of nothing. ``traits``, kept
    over a run, spares the requests whose answer is already known."""
    traits = traits or RegistryTraits()
    done = ArtifactDeletes()
    candidates = [t for t in _artifact_tags(digest) if traits.tags is None or t in traits.tags]
    fallback = digest.replace(":", "-", 1)
    if traits.referrers_api is not False or fallback in candidates:
        referrers, traits.referrers_api = client.referrers(repository, digest)
        for descriptor in referrers:
            child = descriptor.get("digest")
            if isinstance(child, str) and delete_manifest(client, repository, child):
                done.referrers.append(child)
    for tag in candidates:
        found = client.find_manifest(repository, tag)
        if found is None:
            continue
        if not traits.tags_alone or delete_tag(client, repository, tag) != "absent":
            delete_manifest(client, repository, found.digest)
            done.tags.append(tag)
    return done
