"""Helm values target: one dotted key path in a single-document values file.

What is written is decided by ``HelmValue.writes`` (the rule is in ``_types``). Missing keys along
the path become one ``Set`` without nodes, which ``_roundtrip`` creates as nested mappings; an
existing scalar is replaced in place.
"""

from __future__ import annotations

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from pipeline.gitops._nodes import (
    Op,
    Plan,
    Set,
    _already,
    _check_writable,
    _describe,
    _is_null,
    _lookup,
    _refuse_alias,
    _scalar_text,
    _show,
    _single_document,
)
from pipeline.gitops._types import (
    HelmValue,
    ImageChange,
    InvalidChangeError,
    StructureError,
    TargetNotFoundError,
)

__all__ = ["plan_helm"]


def _helm_value(target: HelmValue, change: ImageChange, source: str) -> str:
    field = target.writes()
    if field == "digest":
        return change.digest
    if field == "repository":
        return change.repository
    if field == "reference":
        return change.reference
    if change.tag is None:
        raise InvalidChangeError("the change has no tag to write here (only a digest)", source=source, path=target.path)
    return change.tag


def plan_helm(docs: list[Node], target: HelmValue, change: ImageChange, source: str) -> Plan:
    value = _helm_value(target, change, source)
    index, node = _single_document(docs, source, target.path)
    keys = target.keys
    key_node: ScalarNode | None = None
    for depth, key in enumerate(keys):
        if _is_null(node):
            return _helm_create(index, target, value, keys[:depth], source)
        where = _show(keys[:depth])
        if not isinstance(node, MappingNode):
            raise StructureError(
                f"is {_describe(node)}, not a mapping, so {target.path} cannot be written", source=source, path=where
            )
        hit = _lookup(node, key, source, where)
        if hit is None:
            return _helm_create(index, target, value, keys[:depth], source)
        key_node, node = hit
        _refuse_alias(key_node, node, source, _show(keys[: depth + 1]))
    assert key_node is not None and node is not None  # the loop ran and ended on a key's value
    _check_writable(key_node, node, source, target.path)
    ops: tuple[Op, ...] = () if _already(node, value) else (Set((index, *keys), value, key_node, node),)  # type: ignore[arg-type]
    return Plan(ops, _scalar_text(node), value)


def _helm_create(index: int, target: HelmValue, value: str, found: tuple[str, ...], source: str) -> Plan:
    if not target.create:
        where = f" (only {_show(found)} exists)" if found else ""
        raise TargetNotFoundError(f"absent{where}, and creating it is not allowed", source=source, path=target.path)
    return Plan((Set((index, *target.keys), value),), None, value)
