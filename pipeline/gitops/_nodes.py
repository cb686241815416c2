"""Locating the target in composed YAML nodes, and the plan of edits made from what was found.

Only ruamel's composer nodes remember where each value starts and ends in the text, and only
that lets ``splice`` replace a value without re-emitting the file, so every target is located
on nodes, never on loaded Python objects. The helpers here are shared by the three target kinds:
lookups that refuse duplicate keys, checks that refuse what a textual replacement cannot express
(aliases, block scalars, collections), and error wording (``_show``, ``_describe``).

A target module answers with a ``Plan``: the ops (``Set``, ``Append``, ``_Delete``) plus the
old and new value. An empty plan means the file already holds the change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pipeline.gitops._types import AmbiguousTargetError, InvalidYamlError, StructureError

__all__ = [
    "STR",
    "_NULL",
    "Append",
    "Key",
    "Op",
    "Plan",
    "Set",
    "_Delete",
    "_Path",
    "_already",
    "_check_writable",
    "_describe",
    "_is_null",
    "_lookup",
    "_refuse_alias",
    "_scalar_text",
    "_set_key",
    "_show",
    "_single_document",
    "compose",
    "is_alias",
    "one_line",
]


Key: TypeAlias = str | int
_Path: TypeAlias = tuple[Key, ...]  # (document index, key or sequence index, ...)


@dataclass(frozen=True)
class Set:
    """Set the mapping key at ``path``; ``key``/``node`` are the existing key and scalar, if any."""

    path: _Path
    value: str
    key: ScalarNode | None = None
    node: ScalarNode | None = None


@dataclass(frozen=True)
class Append:
    """Append a new mapping to the sequence at ``path`` (created when missing)."""

    path: _Path
    entry: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Delete:
    path: _Path


Op: TypeAlias = Set | Append | _Delete


@dataclass(frozen=True)
class Plan:
    ops: tuple[Op, ...]
    old_value: str | None
    new_value: str


STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"


def compose(text: str, source: str) -> list[Node]:
    """Parse to nodes (not Python objects): only nodes remember where they are in the text."""
    try:
        return list(YAML(typ="rt").compose_all(text))
    except YAMLError as exc:
        raise InvalidYamlError(f"not valid YAML: {one_line(exc)}", source=source) from exc


def one_line(exc: Exception) -> str:
    """ruamel's problem and where, without its multi-line excerpt naming "<unicode string>"."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def _is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == _NULL)


def is_alias(key: Node, value: Node) -> bool:
    """An alias reuses the node of its anchor, which therefore starts before the key does."""
    start: int = value.start_mark.index  # ruamel leaves its marks untyped
    end: int = key.end_mark.index
    return start < end


def _lookup(mapping: MappingNode, key: str, source: str, where: str) -> tuple[ScalarNode, Node] | None:
    """The (key, value) pair for a string key; a key written twice is not ours to pick from."""
    hits = [(k, v) for k, v in mapping.value if isinstance(k, ScalarNode) and k.tag == STR and k.value == key]
    if len(hits) > 1:
        lines = ", ".join(str(k.start_mark.line + 1) for k, _ in hits)
        raise AmbiguousTargetError(f"key {key!r} appears {len(hits)} times (lines {lines})", source=source, path=where)
    return hits[0] if hits else None


def _describe(node: Node | None) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if _is_null(node):
        return "null"
    assert isinstance(node, ScalarNode) and node.tag is not None  # a composed node has its tag resolved
    if node.tag == STR:
        return f"the string {node.value!r}"
    return f"{node.value!r} ({node.tag.rsplit(':', 1)[-1]})"


def _scalar_text(node: Node | None) -> str | None:
    """A scalar's text, or None for null and collections: for old values and names."""
    if isinstance(node, ScalarNode) and not _is_null(node):
        return str(node.value)
    return None


def _show(keys: Iterable[Key]) -> str:
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out or "<document root>"


def _single_document(docs: list[Node], source: str, where: str) -> tuple[int, Node | None]:
    """Values files and kustomizations hold one document; guessing among several is unsafe."""
    full = [(i, node) for i, node in enumerate(docs) if not _is_null(node)]
    if len(full) > 1:
        raise StructureError(f"the file has {len(full)} YAML documents; expected one", source=source, path=where)
    return full[0] if full else (0, None)


def _refuse_alias(key: Node, node: Node, source: str, where: str) -> None:
    """Writing through ``*alias`` would edit its anchor, and so every other use of it."""
    if is_alias(key, node):
        raise StructureError(
            f"is an alias of &{node.anchor} (line {node.start_mark.line + 1}); writing it would "
            "change every use of that anchor, so change the anchor's value instead",
            source=source,
            path=where,
        )


def _check_writable(key: ScalarNode, node: Node, source: str, where: str) -> None:
    """Refuse values a textual replacement cannot express faithfully."""
    _refuse_alias(key, node, source, where)
    if not isinstance(node, ScalarNode):
        raise StructureError(f"is {_describe(node)}, not a scalar", source=source, path=where)
    if node.style in ("|", ">"):
        raise StructureError(
            f"is a block scalar ({node.style}); write it as a one-line value first", source=source, path=where
        )


def _already(node: Node | None, value: str) -> bool:
    return isinstance(node, ScalarNode) and node.tag == STR and node.value == value


def _set_key(mapping: MappingNode, path: _Path, key: str, value: str, source: str, where: str) -> list[Op]:
    """The op setting ``key`` of an existing mapping, or none when it already holds ``value``."""
    hit = _lookup(mapping, key, source, where)
    if hit is None:
        return [Set((*path, key), value)]
    key_node, node = hit
    _check_writable(key_node, node, source, f"{where}.{key}")
    if _already(node, value):
        return []
    return [Set((*path, key), value, key_node, node)]  # type: ignore[arg-type]
