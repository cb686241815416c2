"""Kustomize target: the ``images:`` entry of a kustomization, matched by ``name``.

Kustomize renders an entry with both ``newTag`` and ``digest`` as ``name:newTag@digest``, and one
with only ``digest`` as ``name@digest`` (``api/filters/imagetag/updater.go``: "overriding tag or
digest will replace both original tag and digest values"). So with a tag the entry gets both, and
renders exactly what the manifest target writes; without a tag an existing ``newTag`` is deleted,
since it would otherwise render a stale tag next to the new digest.
"""

from __future__ import annotations

from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from pipeline.gitops._nodes import (
    Append,
    Op,
    Plan,
    _check_writable,
    _Delete,
    _describe,
    _is_null,
    _lookup,
    _Path,
    _refuse_alias,
    _scalar_text,
    _set_key,
    _single_document,
)
from pipeline.gitops._types import (
    AmbiguousTargetError,
    ImageChange,
    KustomizeImage,
    StructureError,
    TargetNotFoundError,
)

__all__ = ["plan_kustomize"]


def plan_kustomize(docs: list[Node], target: KustomizeImage, change: ImageChange, source: str) -> Plan:
    name = target.name or change.repository
    index, root = _single_document(docs, source, "images")
    if not _is_null(root) and not isinstance(root, MappingNode):
        raise StructureError(
            f"a kustomization is a mapping, this is {_describe(root)}", source=source, path="<document root>"
        )
    hit = _lookup(root, "images", source, "<document root>") if isinstance(root, MappingNode) else None
    if hit is None or _is_null(hit[1]):
        return _kustomize_append(index, target, name, change, [], source)
    key_node, images = hit
    _refuse_alias(key_node, images, source, "images")
    if not isinstance(images, SequenceNode):
        raise StructureError(f"is {_describe(images)}, not a list", source=source, path="images")
    entries = _kustomize_entries(images, name, source)
    if not entries:
        names = [n for item in images.value if (n := _entry_name(item, source)) is not None]
        return _kustomize_append(index, target, name, change, names, source)
    if len(entries) > 1:
        shown = " and ".join(f"images[{i}]" for i, _ in entries)
        raise AmbiguousTargetError(f"{shown} both have name {name!r}", source=source, path="images")
    position, entry = entries[0]
    path: _Path = (index, "images", position)
    ops = _kustomize_entry_ops(entry, path, name, change, source, f"images[{position}]")
    return Plan(tuple(ops), _kustomize_rendered(entry, source), change.reference)


def _entry_name(item: Node, source: str) -> str | None:
    if not isinstance(item, MappingNode):
        return None
    hit = _lookup(item, "name", source, "images")
    return _scalar_text(hit[1]) if hit else None


def _kustomize_entries(images: SequenceNode, name: str, source: str) -> list[tuple[int, MappingNode]]:
    found = []
    for position, item in enumerate(images.value):
        if not isinstance(item, MappingNode):
            raise StructureError(f"is {_describe(item)}, not a mapping", source=source, path=f"images[{position}]")
        if _entry_name(item, source) == name:
            found.append((position, item))
    return found


def _kustomize_append(
    index: int, target: KustomizeImage, name: str, change: ImageChange, names: list[str], source: str
) -> Plan:
    if not target.create:
        present = f" (entries: {', '.join(names)})" if names else ""
        raise TargetNotFoundError(
            f"no entry with name {name!r}{present}, and creating it is not allowed", source=source, path="images"
        )
    entry = [("name", name)]
    if change.repository != name:
        entry.append(("newName", change.repository))
    if change.tag:
        entry.append(("newTag", change.tag))
    entry.append(("digest", change.digest))
    return Plan((Append((index, "images"), tuple(entry)),), None, change.reference)


def _kustomize_entry_ops(
    entry: MappingNode, path: _Path, name: str, change: ImageChange, source: str, where: str
) -> list[Op]:
    """newName only when it must differ from name, newTag per the rule above, then digest."""
    ops: list[Op] = []
    if change.repository != name or _lookup(entry, "newName", source, where):
        ops += _set_key(entry, path, "newName", change.repository, source, where)
    if change.tag:
        ops += _set_key(entry, path, "newTag", change.tag, source, where)
    elif (hit := _lookup(entry, "newTag", source, where)) is not None:
        _check_writable(hit[0], hit[1], source, f"{where}.newTag")
        if hit[1].anchor is not None:
            raise StructureError(
                f"carries anchor &{hit[1].anchor}; deleting it would break its aliases",
                source=source,
                path=f"{where}.newTag",
            )
        ops.append(_Delete((*path, "newTag")))
    ops += _set_key(entry, path, "digest", change.digest, source, where)
    return ops


def _kustomize_rendered(entry: MappingNode, source: str) -> str:
    """What the entry makes of a matching image, as far as the entry alone decides it."""

    def get(key: str) -> str | None:
        hit = _lookup(entry, key, source, "images")
        return _scalar_text(hit[1]) if hit else None

    out = get("newName") or get("name") or ""
    if (tag := get("newTag")) is not None:
        out += f":{tag}"
    if (digest := get("digest")) is not None:
        out += f"@{digest}"
    return out
