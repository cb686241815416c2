"""Per-layer file trees with the exact semantics dive 0.13 gives them.

The efficiency numbers only match dive's if the trees match dive's, quirks included:

- A path is cleaned like Go's ``path.Clean`` and split on ``/``; missing parents are created as
  *implicit* nodes with size 0 that are **not** directories (``IsDir`` false) until the layer
  carries an entry for them.
- A name starting with ``.wh..wh..`` (the opaque-directory marker ``.wh..wh..opq``) is never
  added: dive ignores opaque whiteouts, so files hidden by one are not counted as deleted.
- A ``.wh.NAME`` entry stays in the tree as a node; its path is reported without the prefix.
- Stacking a layer onto the trees below it re-adds *every* node of the upper layer, implicit
  parents included, so an implicit parent overwrites the lower directory's payload with
  "size 0, not a directory"; a whiteout removes the path (silently, if it is absent).
- Children are always visited in byte order of their names, deepest first.

Only the header facts dive uses are kept (size and whether it is a directory), so memory
grows with the number of files, never with their size.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Iterator

__all__ = ["WHITEOUT_PREFIX", "FileTree", "Node", "PathMissing", "go_clean", "subtree_size"]

WHITEOUT_PREFIX = ".wh."
OPAQUE_PREFIX = ".wh..wh.."


class PathMissing(LookupError):
    """A path dive looked up is not in the tree (dive aborts the current layer's walk)."""


def go_clean(path: str) -> str:
    """Go's ``path.Clean``: like ``posixpath.normpath`` but ``//a`` becomes ``/a``."""
    cleaned = posixpath.normpath(path) if path else "."
    return cleaned[1:] if cleaned.startswith("//") else cleaned


def _byte_order(name: str) -> bytes:
    """Go compares strings as bytes; tar names are decoded with surrogateescape."""
    return name.encode("utf-8", "surrogateescape")


class Node:
    """One path in one tree: name, payload (size, is_dir) and children by name."""

    __slots__ = ("_path", "children", "is_dir", "name", "parent", "size")

    def __init__(self, name: str, parent: Node | None, size: int = 0, is_dir: bool = False) -> None:
        self.name = name
        self.parent = parent
        self.children: dict[str, Node] = {}
        self.size = size
        self.is_dir = is_dir
        self._path: str | None = None

    @property
    def is_whiteout(self) -> bool:
        return self.name.startswith(WHITEOUT_PREFIX)

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def path(self) -> str:
        """Absolute path from the root; a whiteout's own ``.wh.`` prefix is dropped."""
        if self._path is None:
            names: list[str] = []
            node: Node | None = self
            while node is not None and node.parent is not None:
                name = node.name
                if node is self and name.startswith(WHITEOUT_PREFIX):
                    name = name[len(WHITEOUT_PREFIX) :]
                names.append(name)
                node = node.parent
            self._path = "/" + "/".join(reversed(names))
        return self._path.replace("//", "/")

    def walk_child_first(self) -> Iterator[Node]:
        """This node's subtree, children in byte order, each node after its children."""
        stack: list[tuple[Node, Iterator[Node]]] = [(self, self._sorted_children())]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                yield node
            else:
                stack.append((child, child._sorted_children()))

    def _sorted_children(self) -> Iterator[Node]:
        return iter([self.children[k] for k in sorted(self.children, key=_byte_order)])


class FileTree:
    """The files of one layer (or of several stacked layers), as dive builds them."""

    def __init__(self) -> None:
        self.root = Node("", None)

    def add_path(self, path: str, size: int, is_dir: bool) -> None:
        """Add ``path`` with its payload, creating implicit parents (dive's ``AddPath``)."""
        names = go_clean(path).strip("/").split("/")
        node = self.root
        last = len(names) - 1
        for idx, name in enumerate(names):
            if not name:
                continue
            child = node.children.get(name)
            if child is None:
                if name.startswith(OPAQUE_PREFIX):
                    return  # dive never records opaque markers (nor anything below one)
                child = node.children[name] = Node(name, node)
            node = child
            if idx == last:
                node.size, node.is_dir = size, is_dir

    def get(self, path: str) -> Node:
        """The node at ``path``; PathMissing if any component is absent."""
        node = self.root
        for name in path.strip("/").split("/"):
            if not name:
                continue
            child = node.children.get(name)
            if child is None:
                raise PathMissing(path)
            node = child
        return node

    def remove(self, path: str) -> None:
        """Drop ``path`` and everything below it; PathMissing if it is not there."""
        node = self.get(path)
        if node.parent is None:
            raise PathMissing(path)  # dive refuses to remove the root
        del node.parent.children[node.name]

    def nodes(self) -> Iterator[Node]:
        """Every node except the root, deepest first, siblings in byte order."""
        return (n for n in self.root.walk_child_first() if n is not self.root)

    def copy(self) -> FileTree:
        """A deep copy (payloads and whiteout nodes included)."""
        twin = FileTree()
        pending: list[tuple[Node, Node]] = [(self.root, twin.root)]
        while pending:
            source, target = pending.pop()
            for name, child in source.children.items():
                copied = target.children[name] = Node(name, target, child.size, child.is_dir)
                pending.append((child, copied))
        return twin

    def stack(self, upper: FileTree) -> None:
        """Lay ``upper`` on top of this tree in place (dive's ``Stack``)."""
        for node in upper.nodes():
            if node.is_whiteout:
                with contextlib.suppress(PathMissing):  # dive logs the failed path and carries on
                    self.remove(node.path())
            else:
                self.add_path(node.path(), node.size, node.is_dir)


def subtree_size(node: Node) -> int:
    """Sum of every payload size in ``node``'s subtree, ``node`` included."""
    return sum(n.size for n in node.walk_child_first())
