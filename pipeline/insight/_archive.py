"""Read a ``docker save`` archive into per-layer file trees without unpacking anything.

The outer tar is opened for random access (only its few dozen headers are indexed), so
``manifest.json`` is read first and layers are taken in the manifest's order. Each layer tar is
then *streamed*: only its headers are looked at, file contents are skipped, and nothing is
written to disk. Both layouts ``docker save`` produces are understood: the legacy one
(``<id>/layer.tar``, Docker < 25) and the OCI one (``blobs/sha256/<hex>``, Docker 25+, with or
without ``manifest.json``); gzip-compressed layers too. zstd layers are not supported.

Like dive, a layer that the archive stores as a *symlink* to an identical earlier layer (the
legacy format's way of saving a repeated diff ID) is read as an empty layer for the waste
figures; its real size is still reported for the layer list.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from pipeline.errors import BuildError
from pipeline.insight._filetree import FileTree, go_clean

__all__ = ["Archive", "read_archive"]

_MAX_JSON = 64 * 1024 * 1024  # a manifest or config larger than this is not an image's
_MAX_LINK_HOPS = 8


@dataclass(frozen=True)
class Archive:
    """What the analysis needs from the archive, layers in image order."""

    config: dict[str, Any]
    trees: list[FileTree]  # dive's view (symlinked duplicate layers are empty)
    dive_sizes: list[int]  # dive's per-layer size: sum of entry sizes of that view
    sizes: list[int]  # the layers' real content sizes (symlinks followed)


class _Unreadable(Exception):
    """Something in the archive is not what a docker save archive holds."""


def _is_dir(info: tarfile.TarInfo) -> bool:
    """Go's ``FileInfo().IsDir()``: a directory entry, or mode bits that say S_IFDIR."""
    return info.isdir() or (info.mode & ~0o7777) == 0o040000


def _layer_tree(stream: IO[bytes]) -> tuple[FileTree, int]:
    """Stream one layer tar: its tree and the sum of its entries' sizes."""
    tree, total = FileTree(), 0
    with tarfile.open(fileobj=stream, mode="r|*", encoding="utf-8", errors="surrogateescape") as layer:
        while (info := layer.next()) is not None:
            cast(Any, layer).members.clear()  # stream mode would keep every header
            name = go_clean(info.name)
            if name == ".":
                continue
            total += info.size
            tree.add_path(name, info.size, _is_dir(info))
    return tree, total


class _Reader:
    """One open archive: JSON documents and layers by their path inside it."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.members = {go_clean(m.name): m for m in tar.getmembers()}
        self.layers: dict[str, tuple[FileTree, int, int]] = {}

    def member(self, name: str) -> tarfile.TarInfo:
        found = self.members.get(go_clean(name))
        if found is None:
            raise _Unreadable(f"{name!r} is named by the image but missing from the archive")
        return found

    def json(self, name: str) -> Any:
        member = self.member(name)
        stream = self.tar.extractfile(member)
        if stream is None or member.size > _MAX_JSON:
            raise _Unreadable(f"{name!r} is not a JSON document")
        try:
            return json.loads(stream.read())
        except ValueError as exc:
            raise _Unreadable(f"{name!r} is not valid JSON: {exc}") from None

    def layer(self, name: str, hops: int = 0) -> tuple[FileTree, int, int]:
        """(dive's tree, dive's size, real size) for the layer stored at ``name``."""
        key = go_clean(name)
        if key not in self.layers:
            self.layers[key] = self._read_layer(self.member(key), hops)
        return self.layers[key]

    def _read_layer(self, member: tarfile.TarInfo, hops: int) -> tuple[FileTree, int, int]:
        if member.issym():
            if hops >= _MAX_LINK_HOPS:
                raise _Unreadable(f"{member.name!r} is a symlink loop")
            target = posixpath.join(posixpath.dirname(member.name), member.linkname)
            return FileTree(), 0, self.layer(target, hops + 1)[2]
        stream = self.tar.extractfile(member)  # follows hard links
        if stream is None:
            raise _Unreadable(f"{member.name!r} is not a layer tar")
        if member.size == 0:
            return FileTree(), 0, 0
        try:
            tree, size = _layer_tree(stream)
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise _Unreadable(
                f"layer {member.name!r} is not a readable tar (zstd layers are not supported): {exc}"
            ) from None
        return tree, size, size


def _blob(descriptor: Any) -> str:
    algorithm, _, hex_digest = str(descriptor["digest"]).partition(":")
    return f"blobs/{algorithm}/{hex_digest}"


def _manifest(reader: _Reader) -> tuple[str, list[str]]:
    """(config path, layer paths): from manifest.json as dive does, else from OCI index.json."""
    if "manifest.json" in reader.members:
        first = reader.json("manifest.json")[0]
        return str(first["Config"]), [str(x) for x in first["Layers"]]
    if "index.json" not in reader.members:
        raise _Unreadable("neither manifest.json nor index.json is in the archive")
    document = reader.json("index.json")
    for _ in range(_MAX_LINK_HOPS):  # an index may point at an index
        if "manifests" not in document:
            return _blob(document["config"]), [_blob(x) for x in document["layers"]]
        document = reader.json(_blob(document["manifests"][0]))
    raise _Unreadable("index.json nests image indexes too deeply")


def _read(tar: tarfile.TarFile) -> Archive:
    reader = _Reader(tar)
    config_path, layer_paths = _manifest(reader)
    config = reader.json(config_path)
    if not isinstance(config, dict):
        raise _Unreadable(f"image config {config_path!r} is not a JSON object")
    layers = [reader.layer(path) for path in layer_paths]
    return Archive(
        config=config, trees=[x[0] for x in layers], dive_sizes=[x[1] for x in layers], sizes=[x[2] for x in layers]
    )


def read_archive(tar_path: Path) -> Archive:
    """Trees and sizes of the image in ``tar_path``; BuildError if it cannot be read."""
    try:
        with tarfile.open(tar_path, mode="r:", encoding="utf-8", errors="surrogateescape") as tar:
            return _read(tar)
    except _Unreadable as exc:
        problem = str(exc)
    except (tarfile.TarError, OSError, EOFError) as exc:
        problem = f"not a readable tar: {exc}"
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        problem = f"manifest.json or index.json lacks the expected fields ({exc!r})"
    raise BuildError(
        f"image archive {tar_path} is unreadable: {problem}. "
        "Expected the output of `docker save` (uncompressed); save the image again."
    )
