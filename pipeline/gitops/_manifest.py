"""Plain-manifest target: a container's ``image`` in Kubernetes resources, any number of documents.

Unlike the other two targets this one never creates structure beyond the ``image`` key: the
container must exist, found in the pod template for its resource kind, and exactly one container
may match (``kind`` and ``name`` narrow the search); otherwise the error lists what was found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from pipeline.gitops._nodes import (
    STR,
    Op,
    Plan,
    Set,
    _already,
    _check_writable,
    _describe,
    _is_null,
    _lookup,
    _Path,
    _scalar_text,
    _show,
)
from pipeline.gitops._types import (
    AmbiguousTargetError,
    ImageChange,
    ManifestContainer,
    StructureError,
    TargetNotFoundError,
)

__all__ = ["plan_manifest"]


_POD_SPECS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_DEFAULT_POD_SPEC = ("spec", "template", "spec")
_CONTAINER_LISTS = ("initContainers", "containers")


@dataclass(frozen=True)
class _Resource:
    index: int
    kind: str | None
    name: str | None
    node: MappingNode

    def __str__(self) -> str:
        return f"{self.kind or '?'}/{self.name or '?'}"


@dataclass(frozen=True)
class _Container:
    resource: _Resource
    path: _Path
    field: str
    name: str | None
    node: MappingNode


def plan_manifest(docs: list[Node], target: ManifestContainer, change: ImageChange, source: str) -> Plan:
    resources = _resources(docs, source)
    selected = [r for r in resources if target.kind in (None, r.kind) and target.name in (None, r.name)]
    if not selected:
        wanted = ", ".join(f"{k}={v}" for k, v in (("kind", target.kind), ("name", target.name)) if v)
        found = ", ".join(map(str, resources)) or "none"
        raise TargetNotFoundError(f"no resource with {wanted} (resources: {found})", source=source)
    containers = [c for r in selected for c in _containers(r, source)]
    matches = [c for c in containers if c.name == target.container]
    if not matches:
        raise TargetNotFoundError(
            f"no container named {target.container!r} ({_inventory(selected, containers)})", source=source
        )
    if len(matches) > 1:
        raise AmbiguousTargetError(
            f"container {target.container!r} is in {', '.join(str(c.resource) for c in matches)}; "
            "set the target's kind and name",
            source=source,
        )
    return _image_plan(matches[0], change, source)


def _resources(docs: list[Node], source: str) -> list[_Resource]:
    out = []
    for index, node in enumerate(docs):
        if isinstance(node, MappingNode):
            out.append(
                _Resource(
                    index,
                    _scalar_text(_child(node, ("kind",), source)),
                    _scalar_text(_child(node, ("metadata", "name"), source)),
                    node,
                )
            )
    return out


def _child(node: Node, keys: Sequence[str], source: str) -> Node | None:
    """The node at ``keys`` below ``node``, or None where the path stops being mappings."""
    for key in keys:
        hit = _lookup(node, key, source, key) if isinstance(node, MappingNode) else None
        if hit is None:
            return None
        node = hit[1]
    return node


def _containers(resource: _Resource, source: str) -> list[_Container]:
    spec_path = _POD_SPECS.get(resource.kind or "", _DEFAULT_POD_SPEC)
    out = []
    for field in _CONTAINER_LISTS:
        items = _child(resource.node, (*spec_path, field), source)
        if not isinstance(items, SequenceNode):
            continue
        for position, item in enumerate(items.value):
            if isinstance(item, MappingNode):
                name = _scalar_text(_child(item, ("name",), source))
                path: _Path = (resource.index, *spec_path, field, position)
                out.append(_Container(resource, path, field, name, item))
    return out


def _inventory(resources: list[_Resource], containers: list[_Container]) -> str:
    """'Deployment/web: initContainers migrate; containers app, sidecar', for the error."""
    parts = []
    for resource in resources:
        lists = []
        for field in _CONTAINER_LISTS:
            names = [c.name or "?" for c in containers if c.resource is resource and c.field == field]
            if names:
                lists.append(f"{field} {', '.join(names)}")
        if lists:
            parts.append(f"{resource}: {'; '.join(lists)}")
    return "containers found: " + (" | ".join(parts) if parts else "none")


def _image_plan(container: _Container, change: ImageChange, source: str) -> Plan:
    where = f"{container.resource} {_show(container.path[1:])}.image"
    value = change.reference
    hit = _lookup(container.node, "image", source, where)
    if hit is None:
        return Plan((Set((*container.path, "image"), value),), None, value)
    key_node, node = hit
    _check_writable(key_node, node, source, where)
    if not _is_null(node) and node.tag != STR:
        raise StructureError(f"is {_describe(node)}, not a string", source=source, path=where)
    ops: tuple[Op, ...] = () if _already(node, value) else (Set((*container.path, "image"), value, key_node, node),)  # type: ignore[arg-type]
    return Plan(ops, _scalar_text(node), value)
