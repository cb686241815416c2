"""Writing a value into the text itself, at the marks of the node it replaces.

This is the common path, and the one that keeps a file byte for byte: only the value's own
characters change, so comments, quoting elsewhere, CRLF and layout survive. The value keeps the
replaced one's quoting style; a plain value stays plain unless every YAML reader (1.1 and 1.2)
would then read it as something other than a string, in which case it is double-quoted.

Also here: the file's indentation, detected from the nodes, which ``_roundtrip`` hands to ruamel's
emitter when keys must be created, so new keys look like their neighbours.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from pipeline.gitops._nodes import STR, Set, is_alias

__all__ = [
    "Indent",
    "_plain_ok",
    "_render",
    "detect_indent",
    "edit_text",
    "splice",
    "styled",
]


_PLAIN = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./:@+-]*")
_RESOLVERS = (VersionedResolver(version=(1, 1)), VersionedResolver(version=(1, 2)))


def _plain_ok(value: str) -> bool:
    """Plain only when every reader (go-yaml is YAML 1.1-ish, ruamel 1.2) sees a string."""
    return (
        bool(_PLAIN.fullmatch(value))
        and not value.endswith(":")
        and all(r.resolve(ScalarNode, value, (True, False)) == STR for r in _RESOLVERS)
    )


def _render(value: str, style: str | None) -> str:
    """The value as YAML text in the replaced value's quoting style."""
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style == '"' or not _plain_ok(value):
        return json.dumps(value, ensure_ascii=False)
    return value


def styled(value: str) -> str:
    """The value as ruamel should emit a new key's value: plain, or double-quoted when needed."""
    return value if _plain_ok(value) else DoubleQuotedScalarString(value)


_PROPERTIES = re.compile(r"(?:[&!][^\s]*[ \t]+)*")


def edit_text(text: str, op: Set) -> tuple[int, int, str]:
    """(start, end, replacement) for one existing scalar, properties like &anchor kept."""
    assert op.node is not None and op.key is not None
    start, end = op.node.start_mark.index, op.node.end_mark.index
    if start >= end:  # an empty null: its marks point at the next token, write after the colon
        colon = text.index(":", op.key.end_mark.index) + 1
        return colon, colon, " " + _render(op.value, None)
    start = _PROPERTIES.match(text, start).end()  # type: ignore[union-attr]
    return start, end, _render(op.value, op.node.style)


def splice(text: str, edits: list[tuple[int, int, str]]) -> str:
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


@dataclass(frozen=True)
class Indent:
    mapping: int
    sequence: int
    offset: int


def detect_indent(docs: list[Node]) -> Indent:
    """The file's own indentation, so new keys look like their neighbours (ruamel has one global
    setting; a file that mixes styles fails the round-trip check instead)."""
    maps: Counter[int] = Counter()
    seqs: Counter[tuple[int, int]] = Counter()
    stack: list[Node] = [d for d in docs if d is not None]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                _count_indent(key, value, maps, seqs)
                stack.append(value)
    mapping = maps.most_common(1)[0][0] if maps else 2
    sequence, offset = seqs.most_common(1)[0][0] if seqs else (2, 0)
    return Indent(mapping, sequence, offset)


def _count_indent(key: Node, value: Node, maps: Counter[int], seqs: Counter[tuple[int, int]]) -> None:
    if is_alias(key, value) or getattr(value, "flow_style", False) or not value.value:
        return
    column = key.start_mark.column
    if isinstance(value, MappingNode):
        maps[value.value[0][0].start_mark.column - column] += 1
    elif isinstance(value, SequenceNode):
        first = value.value[0]
        content = first.value[0][0] if isinstance(first, MappingNode) and first.value else first
        seqs[(content.start_mark.column - column, value.start_mark.column - column)] += 1
