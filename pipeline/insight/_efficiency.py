"""Wasted bytes and efficiency score, computed the way dive 0.13 computes them.

"Layers are additive": a file that a later layer deletes or overwrites still costs its bytes in
every pull. dive measures that per path over the leaves of each layer's tree:

- every leaf (file, symlink, empty directory, whiteout) adds a *node* to its path's record; a
  whiteout's size is 0 unless the deleted path was a directory in the stack of the layers below,
  in which case it is the sum of every payload in that directory's subtree;
- ``efficiency = sum(smallest size per path) / sum(all sizes per path)`` (1.0 if nothing),
- a path becomes *inefficient* when its second node arrives, and the **wasted bytes** are the
  sum of the inefficient paths' *cumulative* sizes: the surviving copy counts as waste too;
- the inefficient list is sorted by cumulative size with Go's unstable sort and reported
  largest first (see ``_gosort``).

Two quirks kept on purpose, because dive's numbers depend on them: a whiteout whose path is not
in the stack below stops the walk of *that layer* (later leaves of the layer are not counted),
and the record it created stays behind with a minimum of -1, which lowers the score's numerator
by one byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.insight._filetree import FileTree, Node, PathMissing, subtree_size
from pipeline.insight._gosort import go_sort

__all__ = ["Efficiency", "PathRecord", "efficiency"]


@dataclass
class PathRecord:
    """What dive's ``EfficiencyData`` keeps for one path across all layers."""

    path: str
    count: int = 0
    cumulative: int = 0
    minimum: int = -1


@dataclass(frozen=True)
class Efficiency:
    score: float
    wasted_bytes: int
    inefficient: list[PathRecord] = field(default_factory=list)  # largest first, as dive lists


class _StackBelow:
    """dive's ``StackTreeRange(trees, 0, i-1)`` for the layer being walked.

    dive rebuilds it from scratch for every whiteout; it only ever grows with ``i`` and is
    never modified by the walk, so one incrementally stacked copy gives the same answers in
    O(files) instead of O(whiteouts x files)."""

    def __init__(self, trees: Sequence[FileTree]) -> None:
        self._trees = trees
        self._tree: FileTree | None = None
        self._applied = 0

    def below(self, index: int) -> FileTree:
        if self._tree is None:
            self._tree = self._trees[0].copy()  # dive starts from a copy of the first layer...
        while self._applied < index:  # ...and stacks layers 0..index-1 onto it (0 twice)
            self._tree.stack(self._trees[self._applied])
            self._applied += 1
        return self._tree


def _leaf_size(node: Node, index: int, stack: _StackBelow) -> int:
    """A leaf's size; for a whiteout, what it deleted if that was a directory, else 0."""
    if not node.is_whiteout:
        return node.size
    previous = stack.below(index).get(node.path())  # PathMissing aborts this layer, as in dive
    return subtree_size(previous) if previous.is_dir else 0


def _walk_layer(
    tree: FileTree, index: int, stack: _StackBelow, records: dict[str, PathRecord], inefficient: list[PathRecord]
) -> None:
    for node in tree.nodes():
        if not node.is_leaf:
            continue
        path = node.path()
        record = records.get(path)
        if record is None:
            record = records[path] = PathRecord(path)  # created before the size is known
        size = _leaf_size(node, index, stack)
        record.cumulative += size
        if record.minimum < 0 or size < record.minimum:
            record.minimum = size
        record.count += 1
        if record.count == 2:
            inefficient.append(record)


def efficiency(trees: Sequence[FileTree]) -> Efficiency:
    """Score, wasted bytes and inefficient paths for layer trees in image order."""
    records: dict[str, PathRecord] = {}
    inefficient: list[PathRecord] = []
    stack = _StackBelow(trees)
    for index, tree in enumerate(trees):
        try:
            _walk_layer(tree, index, stack, records, inefficient)
        except PathMissing:
            continue  # dive logs "unable to propagate ref tree" and goes on with the next layer
    minimum = sum(r.minimum for r in records.values())
    discovered = sum(r.cumulative for r in records.values())
    score = 1.0 if discovered == 0 else float(minimum) / float(discovered)
    go_sort(inefficient, lambda a, b: a.cumulative < b.cumulative)
    inefficient.reverse()
    return Efficiency(score, sum(r.cumulative for r in inefficient), inefficient)
