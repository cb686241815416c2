"""Creating and deleting keys through ruamel's emitter, guarded so no unrelated line changes.

Only structural ops (a key to add, an ``images:`` entry to append, a ``newTag`` to delete) come
here; replacing an existing value never does. ruamel silently re-formats some files (it drops
``~``, comments before ``---``, ``...``, aligned ``key:   value``, CRLF, ...), so two guards:

* before editing, the unmodified text is loaded and re-dumped with the file's own indentation;
  if that is not identical to the text, ``RoundTripError`` is raised rather than rewriting it;
* after editing, a line diff must show only YAML content lines added or removed, one block per
  op: no comment, blank line or document marker moved.

ruamel hangs comments and blank lines off the scalar before them, so appending after (or deleting
before) them would carry them to the wrong place; the "slot"/"gap" helpers move that trailing text
so it stays where it was in the file.
"""

from __future__ import annotations

import difflib
import io
import re
from collections.abc import Sequence
from typing import Any, TypeAlias

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.tokens import CommentToken

from pipeline.gitops._nodes import Append, Key, Op, Set, one_line
from pipeline.gitops._splice import Indent, styled
from pipeline.gitops._types import InvalidYamlError, RoundTripError

__all__ = ["rewrite_round_trip"]


_EXPLICIT_START = re.compile(r"(?:[ \t]*(?:#[^\n]*)?\n|%[^\n]*\n)*---(?:[ \t\r\n]|$)")


def _ruamel(text: str, indent: Indent) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 1 << 16  # never fold a long line
    yaml.indent(mapping=indent.mapping, sequence=indent.sequence, offset=indent.offset)
    yaml.explicit_start = bool(_EXPLICIT_START.match(text))
    return yaml


def _dump(yaml: YAML, docs: list[Any], original: str) -> str:
    buffer = io.StringIO()
    yaml.dump_all(docs, buffer)
    out = buffer.getvalue()
    if original and not original.endswith("\n") and out.endswith("\n"):
        out = out[:-1]
    return out


def rewrite_round_trip(text: str, indent: Indent, ops: Sequence[Op], source: str) -> str:
    """Apply structural ops with ruamel, but only on a file ruamel reproduces exactly."""
    yaml = _ruamel(text, indent)
    try:
        docs = list(yaml.load_all(text))
    except YAMLError as exc:
        raise InvalidYamlError(f"not valid YAML: {one_line(exc)}", source=source) from exc
    before = _dump(yaml, docs, text)
    if before != text:
        raise RoundTripError(
            "keys must be added or removed, but ruamel.yaml would also rewrite unrelated content "
            f"({_first_difference(text, before)}); add the key by hand once: later updates then "
            "replace its value in place",
            source=source,
        )
    for op in ops:
        _apply(docs, op)
    after = _dump(yaml, docs, text)
    _check_local(text, after, len(ops), source)
    return after


def _first_difference(a: str, b: str) -> str:
    for number, (left, right) in enumerate(zip(a.splitlines(True), b.splitlines(True), strict=False), 1):
        if left != right:
            return f"line {number}: {left!r} would become {right!r}"
    shorter = min(len(a.splitlines(True)), len(b.splitlines(True))) + 1
    return f"from line {shorter} on, the text would be {'cut' if len(b) < len(a) else 'extended'}"


def _check_local(before: str, after: str, op_count: int, source: str) -> None:
    """ruamel hangs comments on neighbouring keys, so a new or deleted key may carry them along
    or split around them: each op must add or remove one block of content lines, nothing else."""
    old, new = before.splitlines(), after.splitlines()
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    changes = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    for _, i1, i2, j1, j2 in changes:
        if len(changes) > op_count or any(map(_is_decoration, old[i1:i2] + new[j1:j2])):
            raise RoundTripError(
                "ruamel.yaml would move a comment, blank line or document "
                f"marker near line {i1 + 1}; edit this file by hand once",
                source=source,
            )


def _is_decoration(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#") or stripped in ("---", "...")


def _apply(docs: list[Any], op: Op) -> None:
    index, *keys = op.path
    assert isinstance(index, int)
    while len(docs) <= index:
        docs.append(None)
    if docs[index] is None:
        docs[index] = CommentedMap()
    container = docs[index]
    if isinstance(op, Set):
        _set_path(container, keys, styled(op.value))
        return
    for key in keys[:-1]:
        container = container[key]
    last = keys[-1]
    if isinstance(op, Append):
        _append_entry(container, str(last), CommentedMap([(k, styled(v)) for k, v in op.entry]))
    else:
        _delete_key(container, str(last))


_MISSING = object()


def _own(mapping: CommentedMap, key: str) -> Any:
    """A key of the mapping itself; ``get`` would also return keys merged in with ``<<``."""
    return dict(mapping.non_merged_items()).get(key, _MISSING)


def _set_path(container: Any, keys: Sequence[Key], value: Any) -> None:
    """Walk the keys that exist, then attach the rest as one finished subtree, so the comments
    moved after it land after its last line (not between a new key and its children)."""
    for depth, key in enumerate(keys[:-1]):
        child = container[key] if isinstance(key, int) else _own(container, key)
        if child is _MISSING or child is None:
            for missing in reversed(keys[depth + 1 :]):
                value = CommentedMap([(missing, value)])
            break
        container = child
    else:
        depth = len(keys) - 1
    _add_key(container, str(keys[depth]), value)


def _add_key(mapping: CommentedMap, key: str, value: Any) -> None:
    if _own(mapping, key) is not _MISSING:
        mapping[key] = value
        return
    gap = _take_gap(_last_slot(mapping))
    mapping[key] = value
    _give_gap(_last_slot(mapping), gap)


def _append_entry(mapping: CommentedMap, key: str, entry: CommentedMap) -> None:
    items = _own(mapping, key)
    if items is _MISSING or items is None:
        _add_key(mapping, key, CommentedSeq([entry]))
        return
    if not items:
        items.fa.set_block_style()
    gap = _take_gap(_last_slot(items))
    items.append(entry)
    _give_gap(_last_slot(items), gap)


def _delete_key(mapping: CommentedMap, key: str) -> None:
    """Delete ``key``; lines after it that ruamel filed under it stay, under the key before."""
    keys = [k for k, _ in mapping.non_merged_items()]
    position = keys.index(key)
    gap = _take_gap(_slot_of(mapping, key))
    del mapping[key]
    mapping.ca.items.pop(key, None)
    if position > 0:
        _give_gap(_slot_of(mapping, keys[position - 1]), gap)


# Comments in ruamel hang off the last scalar before them: ``ca.items[key][2]`` in a mapping,
# ``ca.items[index][0]`` in a sequence. Its text is the rest of that scalar's line (an end-of-line
# comment, or just the newline) followed by every comment and blank line up to the next token. A
# "slot" names that place; the "gap" is the text after the first line, which belongs with
# whatever ends the block and so must move when a key is appended after (or deleted before) it.
_Slot: TypeAlias = tuple[dict[Any, Any], Any, int]
_Gap: TypeAlias = tuple[str, Any]


def _is_block(node: Any) -> bool:
    return isinstance(node, (CommentedMap, CommentedSeq)) and len(node) > 0 and not node.fa.flow_style()


def _last_slot(node: Any) -> _Slot | None:
    if isinstance(node, CommentedMap):
        keys = [k for k, _ in node.non_merged_items()]
        if not keys or node.fa.flow_style():
            return None
        return _slot_of(node, keys[-1])
    if isinstance(node, CommentedSeq) and _is_block(node):
        return _last_slot(node[-1]) if _is_block(node[-1]) else (node.ca.items, len(node) - 1, 0)
    return None


def _slot_of(mapping: CommentedMap, key: Any) -> _Slot | None:
    value = mapping[key]
    return _last_slot(value) if _is_block(value) else (mapping.ca.items, key, 2)


def _take_gap(slot: _Slot | None) -> _Gap | None:
    if slot is None:
        return None
    items, key, position = slot
    token = (items.get(key) or [None] * 4)[position]
    if token is None or "\n" not in token.value:
        return None
    head, rest = token.value.split("\n", 1)
    if not rest:
        return None
    token.value = head + "\n"
    return rest, token.start_mark


def _give_gap(slot: _Slot | None, gap: _Gap | None) -> None:
    if gap is None or slot is None:
        return
    rest, mark = gap
    items, key, position = slot
    entry = items.setdefault(key, [None] * 4)
    token = entry[position]
    if token is None:
        entry[position] = CommentToken("\n" + rest, mark, None)
    else:
        token.value = token.value + rest
