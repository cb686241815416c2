"""Write a promoted image into the YAML that Argo CD or Flux deploys from.

Text in, text out: no git, no files. Like Flux image-automation-controller's ``update`` package,
this only edits YAML; committing and pushing belong to the caller.

Three kinds of target are understood (see the dataclasses): a Helm values key, a kustomization's
``images:`` entry, and a container's ``image`` in plain Kubernetes manifests.

Keeping the file byte for byte
------------------------------
A reviewer reading the promotion commit must see one changed line, not a re-formatted file, so:

1. The text is parsed with ruamel.yaml's composer, whose nodes record where each value starts and
   ends in the text. The target is located there and a plan is made: values to set, entries to
   append, keys to delete.
2. A value that already exists is replaced *in the text*, at the node's recorded marks. Nothing else
   is touched, so comments (also the end-of-line comment on the changed line), key order, quoting,
   indentation, ``---``, blank lines, CRLF and a missing final newline all survive, even in files
   that ruamel itself would re-format. The replaced value keeps its quoting style; a plain value
   stays plain unless the new one would then read as a number, bool, null or date (YAML 1.1 or
   1.2), in which case it is double-quoted.
3. Only when keys must be created or deleted does ruamel's emitter run, with the file's own
   indentation (mapping indent, sequence indent and dash offset, detected from the file). Before
   that, the unmodified text is loaded and re-dumped; if the re-dump is not identical to the text
   (ruamel drops ``~``, comments before ``---``, ``...``, aligned ``key:   value``, CRLF, ...),
   ``RoundTripError`` is raised instead of rewriting unrelated lines. After the edit, a line diff
   must show only YAML content lines added or removed: no comment or blank line moved.
4. The result is planned again and must need no further edit, so a second application is always
   a no-op and a bad edit can never be returned.

Which value is written
----------------------
Helm: the last key of the path decides (case-insensitive suffix, checked in this order):
``...digest`` gets ``sha256:...``, ``...tag`` gets the tag (an error when the change has none),
``...repository`` gets the repository, anything else the full reference ``repository@digest``
(``repository:tag@digest`` with a tag). ``HelmValue.field`` overrides the rule.

Kustomize renders an entry with both ``newTag`` and ``digest`` as ``name:newTag@digest``, and one
with only ``digest`` as ``name@digest`` (``api/filters/imagetag/updater.go``: "overriding tag or
digest will replace both original tag and digest values"). So with a tag the entry gets both, and
renders exactly what the manifest target writes; without a tag an existing ``newTag`` is deleted,
since it would otherwise render a stale tag next to the new digest.
"""

from __future__ import annotations

import difflib
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.tokens import CommentToken

__all__ = [
    "AmbiguousTargetError",
    "HelmField",
    "HelmValue",
    "ImageChange",
    "InvalidChangeError",
    "InvalidTargetError",
    "InvalidYamlError",
    "KustomizeImage",
    "ManifestContainer",
    "RoundTripError",
    "StructureError",
    "Target",
    "TargetNotFoundError",
    "UpdateError",
    "UpdateResult",
    "update_yaml",
]


# --------------------------------------------------------------------------------------- errors


class UpdateError(ValueError):
    """Base of every refusal here; ``source`` is the file, ``path`` the key path, when known."""

    def __init__(self, reason: str, *, source: str | None = None, path: str | None = None) -> None:
        self.reason = reason
        self.source = source
        self.path = path
        super().__init__(": ".join(part for part in (source, path, reason) if part))


class InvalidYamlError(UpdateError):
    """The text is not YAML (or has duplicate keys): nothing can be located in it."""


class InvalidChangeError(UpdateError):
    """The image change is malformed, or lacks what the target needs (a tag for a ``tag`` key)."""


class InvalidTargetError(UpdateError):
    """A target was described wrongly (an empty key path, an unknown field)."""


class StructureError(UpdateError):
    """The file has the key, but not in a shape we may write to (a non-mapping, an alias...)."""


class TargetNotFoundError(UpdateError):
    """Nothing in the file matches the target, and creating it is not allowed or not possible."""


class AmbiguousTargetError(UpdateError):
    """More than one place matches; writing one of them silently would be a guess."""


class RoundTripError(UpdateError):
    """Keys must be created or deleted, but ruamel.yaml would also rewrite unrelated lines."""


# ------------------------------------------------------------------------------- change, targets

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"[A-Za-z0-9][A-Za-z0-9.-]*(?::[0-9]+)?(?:/{_PATH_COMPONENT})*")


@dataclass(frozen=True)
class ImageChange:
    """One image to write: validated up front so no target can write half a reference."""

    repository: str
    digest: str
    tag: str | None = None

    def __post_init__(self) -> None:
        if not _REPOSITORY.fullmatch(self.repository):
            raise InvalidChangeError(
                f"repository {self.repository!r} is not an image repository "
                "(no tag or digest in it, e.g. registry.example.com:5000/team/app)")
        if not _DIGEST.fullmatch(self.digest):
            raise InvalidChangeError(f"digest {self.digest!r} is not sha256:<64 lowercase hex>")
        if self.tag is not None and not _TAG.fullmatch(self.tag):
            raise InvalidChangeError(f"tag {self.tag!r} is not an image tag (no @digest in it)")

    @property
    def reference(self) -> str:
        """``repository[:tag]@digest``: the digest pins it, the tag only tells people which."""
        tagged = f"{self.repository}:{self.tag}" if self.tag else self.repository
        return f"{tagged}@{self.digest}"


HelmField: TypeAlias = Literal["digest", "tag", "repository", "reference"]
_HELM_FIELDS: tuple[HelmField, ...] = ("digest", "tag", "repository", "reference")


@dataclass(frozen=True)
class HelmValue:
    """A dotted key path in a Helm values file, e.g. ``image.digest`` or ``app.image``.

    ``field`` says what is written there; by default the last key decides (module docstring).
    Missing keys along the path are created as mappings unless ``create`` is false.
    """

    path: str
    field: HelmField | None = None
    create: bool = True

    def __post_init__(self) -> None:
        if not self.path or any(not key for key in self.path.split(".")):
            raise InvalidTargetError(f"helm key path {self.path!r} has an empty key")
        if self.field is not None and self.field not in _HELM_FIELDS:
            choices = ", ".join(_HELM_FIELDS)
            raise InvalidTargetError(f"field {self.field!r} is not one of {choices}",
                                     path=self.path)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.path.split("."))

    def writes(self) -> HelmField:
        """What goes at the path: the explicit field, else the rule on the last key's suffix."""
        if self.field is not None:
            return self.field
        last = self.keys[-1].lower()
        for suffix in ("digest", "tag", "repository"):
            if last.endswith(suffix):
                return suffix  # type: ignore[return-value]
        return "reference"


@dataclass(frozen=True)
class KustomizeImage:
    """The ``images:`` entry of a kustomization whose ``name`` is ``name`` (default: repository).

    The entry (and the ``images:`` list) is created when missing unless ``create`` is false.
    """

    name: str | None = None
    create: bool = True

    def __post_init__(self) -> None:
        if self.name is not None and not self.name.strip():
            raise InvalidTargetError("kustomize image name is empty")


@dataclass(frozen=True)
class ManifestContainer:
    """The ``image`` of container ``container`` in Kubernetes manifests (any number of documents).

    Pod templates are found per kind: ``spec`` for a Pod, ``spec.jobTemplate.spec.template.spec``
    for a CronJob, ``template.spec`` for a PodTemplate, ``spec.template.spec`` for anything else;
    both ``containers`` and ``initContainers`` are searched. ``kind`` and ``name`` (the resource's
    ``metadata.name``) narrow the search when several resources have such a container.
    """

    container: str
    kind: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.container.strip():
            raise InvalidTargetError("container name is empty")


Target: TypeAlias = HelmValue | KustomizeImage | ManifestContainer


@dataclass(frozen=True)
class UpdateResult:
    """The new text, whether it differs, and the value before and after (for the commit message).

    For kustomize the values are image references as the entry renders them.
    """

    text: str
    changed: bool
    old_value: str | None
    new_value: str


# ----------------------------------------------------------------------------------- entry point


def update_yaml(text: str, target: Target, change: ImageChange, *,
                source: str = "<string>") -> UpdateResult:
    """Write ``change`` at ``target`` in ``text``, touching nothing else.

    ``source`` (the file's path in the repository) only names the file in error messages.
    """
    bom, body = ("\ufeff", text[1:]) if text.startswith("\ufeff") else ("", text)
    docs = _compose(body, source)
    plan = _plan(docs, target, change, source)
    if not plan.ops:
        return UpdateResult(text, False, plan.old_value, plan.new_value)
    new_body = _execute(body, docs, plan.ops, source)
    if _plan(_compose(new_body, source), target, change, source).ops:
        raise UpdateError("internal error: the edited text still differs from the change",
                          source=source)
    return UpdateResult(bom + new_body, new_body != body, plan.old_value, plan.new_value)


# ------------------------------------------------------------------------------------ the plan

_Key: TypeAlias = str | int
_Path: TypeAlias = tuple[_Key, ...]  # (document index, key or sequence index, ...)


@dataclass(frozen=True)
class _Set:
    """Set the mapping key at ``path``; ``key``/``node`` are the existing key and scalar, if any."""

    path: _Path
    value: str
    key: ScalarNode | None = None
    node: ScalarNode | None = None


@dataclass(frozen=True)
class _Append:
    """Append a new mapping to the sequence at ``path`` (created when missing)."""

    path: _Path
    entry: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Delete:
    path: _Path


_Op: TypeAlias = _Set | _Append | _Delete


@dataclass(frozen=True)
class _Plan:
    ops: tuple[_Op, ...]
    old_value: str | None
    new_value: str


def _plan(docs: list[Node], target: Target, change: ImageChange, source: str) -> _Plan:
    if isinstance(target, HelmValue):
        return _plan_helm(docs, target, change, source)
    if isinstance(target, KustomizeImage):
        return _plan_kustomize(docs, target, change, source)
    if isinstance(target, ManifestContainer):
        return _plan_manifest(docs, target, change, source)
    raise TypeError(f"unknown target {target!r}")


# ----------------------------------------------------------------------------- node helpers

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"


def _compose(text: str, source: str) -> list[Node]:
    """Parse to nodes (not Python objects): only nodes remember where they are in the text."""
    try:
        return list(YAML(typ="rt").compose_all(text))
    except YAMLError as exc:
        raise InvalidYamlError(f"not valid YAML: {_one_line(exc)}", source=source) from exc


def _one_line(exc: Exception) -> str:
    """ruamel's problem and where, without its multi-line excerpt naming "<unicode string>"."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def _is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == _NULL)


def _is_alias(key: Node, value: Node) -> bool:
    """An alias reuses the node of its anchor, which therefore starts before the key does."""
    return value.start_mark.index < key.end_mark.index


def _lookup(mapping: MappingNode, key: str, source: str,
            where: str) -> tuple[ScalarNode, Node] | None:
    """The (key, value) pair for a string key; a key written twice is not ours to pick from."""
    hits = [(k, v) for k, v in mapping.value
            if isinstance(k, ScalarNode) and k.tag == _STR and k.value == key]
    if len(hits) > 1:
        lines = ", ".join(str(k.start_mark.line + 1) for k, _ in hits)
        raise AmbiguousTargetError(f"key {key!r} appears {len(hits)} times (lines {lines})",
                                   source=source, path=where)
    return hits[0] if hits else None


def _describe(node: Node | None) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if _is_null(node):
        return "null"
    assert isinstance(node, ScalarNode)
    if node.tag == _STR:
        return f"the string {node.value!r}"
    return f"{node.value!r} ({node.tag.rsplit(':', 1)[-1]})"


def _scalar_text(node: Node | None) -> str | None:
    """A scalar's text, or None for null and collections: for old values and names."""
    if isinstance(node, ScalarNode) and not _is_null(node):
        return str(node.value)
    return None


def _show(keys: Iterable[_Key]) -> str:
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out or "<document root>"


def _single_document(docs: list[Node], source: str, where: str) -> tuple[int, Node | None]:
    """Values files and kustomizations hold one document; guessing among several is unsafe."""
    full = [(i, node) for i, node in enumerate(docs) if not _is_null(node)]
    if len(full) > 1:
        raise StructureError(f"the file has {len(full)} YAML documents; expected one",
                             source=source, path=where)
    return full[0] if full else (0, None)


def _refuse_alias(key: Node, node: Node, source: str, where: str) -> None:
    """Writing through ``*alias`` would edit its anchor, and so every other use of it."""
    if _is_alias(key, node):
        raise StructureError(
            f"is an alias of &{node.anchor} (line {node.start_mark.line + 1}); writing it would "
            "change every use of that anchor, so change the anchor's value instead",
            source=source, path=where)


def _check_writable(key: ScalarNode, node: Node, source: str, where: str) -> None:
    """Refuse values a textual replacement cannot express faithfully."""
    _refuse_alias(key, node, source, where)
    if not isinstance(node, ScalarNode):
        raise StructureError(f"is {_describe(node)}, not a scalar", source=source, path=where)
    if node.style in ("|", ">"):
        raise StructureError(f"is a block scalar ({node.style}); write it as a one-line value "
                             "first", source=source, path=where)


def _already(node: Node | None, value: str) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _STR and node.value == value


def _set_key(mapping: MappingNode, path: _Path, key: str, value: str, source: str,
             where: str) -> list[_Op]:
    """The op setting ``key`` of an existing mapping, or none when it already holds ``value``."""
    hit = _lookup(mapping, key, source, where)
    if hit is None:
        return [_Set(path + (key,), value)]
    key_node, node = hit
    _check_writable(key_node, node, source, f"{where}.{key}")
    if _already(node, value):
        return []
    return [_Set(path + (key,), value, key_node, node)]  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- helm


def _helm_value(target: HelmValue, change: ImageChange, source: str) -> str:
    field = target.writes()
    if field == "digest":
        return change.digest
    if field == "repository":
        return change.repository
    if field == "reference":
        return change.reference
    if change.tag is None:
        raise InvalidChangeError("the change has no tag to write here (only a digest)",
                                 source=source, path=target.path)
    return change.tag


def _plan_helm(docs: list[Node], target: HelmValue, change: ImageChange, source: str) -> _Plan:
    value = _helm_value(target, change, source)
    index, node = _single_document(docs, source, target.path)
    keys = target.keys
    key_node: ScalarNode | None = None
    for depth, key in enumerate(keys):
        if _is_null(node):
            return _helm_create(index, target, value, keys[:depth], source)
        where = _show(keys[:depth])
        if not isinstance(node, MappingNode):
            raise StructureError(f"is {_describe(node)}, not a mapping, so {target.path} "
                                 "cannot be written", source=source, path=where)
        hit = _lookup(node, key, source, where)
        if hit is None:
            return _helm_create(index, target, value, keys[:depth], source)
        key_node, node = hit
        _refuse_alias(key_node, node, source, _show(keys[:depth + 1]))
    assert key_node is not None
    _check_writable(key_node, node, source, target.path)
    ops: tuple[_Op, ...] = () if _already(node, value) else (
        _Set((index, *keys), value, key_node, node),)  # type: ignore[arg-type]
    return _Plan(ops, _scalar_text(node), value)


def _helm_create(index: int, target: HelmValue, value: str, found: tuple[str, ...],
                 source: str) -> _Plan:
    if not target.create:
        where = f" (only {_show(found)} exists)" if found else ""
        raise TargetNotFoundError(f"absent{where}, and creating it is not allowed",
                                  source=source, path=target.path)
    return _Plan((_Set((index, *target.keys), value),), None, value)


# ------------------------------------------------------------------------------------ kustomize


def _plan_kustomize(docs: list[Node], target: KustomizeImage, change: ImageChange,
                    source: str) -> _Plan:
    name = target.name or change.repository
    index, root = _single_document(docs, source, "images")
    if not _is_null(root) and not isinstance(root, MappingNode):
        raise StructureError(f"a kustomization is a mapping, this is {_describe(root)}",
                             source=source, path="<document root>")
    hit = (_lookup(root, "images", source, "<document root>")
           if isinstance(root, MappingNode) else None)
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
    return _Plan(tuple(ops), _kustomize_rendered(entry, source), change.reference)


def _entry_name(item: Node, source: str) -> str | None:
    if not isinstance(item, MappingNode):
        return None
    hit = _lookup(item, "name", source, "images")
    return _scalar_text(hit[1]) if hit else None


def _kustomize_entries(images: SequenceNode, name: str,
                       source: str) -> list[tuple[int, MappingNode]]:
    found = []
    for position, item in enumerate(images.value):
        if not isinstance(item, MappingNode):
            raise StructureError(f"is {_describe(item)}, not a mapping", source=source,
                                 path=f"images[{position}]")
        if _entry_name(item, source) == name:
            found.append((position, item))
    return found


def _kustomize_append(index: int, target: KustomizeImage, name: str, change: ImageChange,
                      names: list[str], source: str) -> _Plan:
    if not target.create:
        present = f" (entries: {', '.join(names)})" if names else ""
        raise TargetNotFoundError(f"no entry with name {name!r}{present}, and creating it is "
                                  "not allowed", source=source, path="images")
    entry = [("name", name)]
    if change.repository != name:
        entry.append(("newName", change.repository))
    if change.tag:
        entry.append(("newTag", change.tag))
    entry.append(("digest", change.digest))
    return _Plan((_Append((index, "images"), tuple(entry)),), None, change.reference)


def _kustomize_entry_ops(entry: MappingNode, path: _Path, name: str, change: ImageChange,
                         source: str, where: str) -> list[_Op]:
    """newName only when it must differ from name, newTag per the rule above, then digest."""
    ops: list[_Op] = []
    if change.repository != name or _lookup(entry, "newName", source, where):
        ops += _set_key(entry, path, "newName", change.repository, source, where)
    if change.tag:
        ops += _set_key(entry, path, "newTag", change.tag, source, where)
    elif (hit := _lookup(entry, "newTag", source, where)) is not None:
        _check_writable(hit[0], hit[1], source, f"{where}.newTag")
        if hit[1].anchor is not None:
            raise StructureError(f"carries anchor &{hit[1].anchor}; deleting it would break its "
                                 "aliases", source=source, path=f"{where}.newTag")
        ops.append(_Delete(path + ("newTag",)))
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


# ------------------------------------------------------------------------------------ manifests

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


def _plan_manifest(docs: list[Node], target: ManifestContainer, change: ImageChange,
                   source: str) -> _Plan:
    resources = _resources(docs, source)
    selected = [r for r in resources
                if target.kind in (None, r.kind) and target.name in (None, r.name)]
    if not selected:
        wanted = ", ".join(f"{k}={v}" for k, v in (("kind", target.kind), ("name", target.name))
                           if v)
        found = ", ".join(map(str, resources)) or "none"
        raise TargetNotFoundError(f"no resource with {wanted} (resources: {found})", source=source)
    containers = [c for r in selected for c in _containers(r, source)]
    matches = [c for c in containers if c.name == target.container]
    if not matches:
        raise TargetNotFoundError(f"no container named {target.container!r} "
                                  f"({_inventory(selected, containers)})", source=source)
    if len(matches) > 1:
        raise AmbiguousTargetError(
            f"container {target.container!r} is in {', '.join(str(c.resource) for c in matches)}; "
            "set the target's kind and name", source=source)
    return _image_plan(matches[0], change, source)


def _resources(docs: list[Node], source: str) -> list[_Resource]:
    out = []
    for index, node in enumerate(docs):
        if isinstance(node, MappingNode):
            out.append(_Resource(index, _scalar_text(_child(node, ("kind",), source)),
                                 _scalar_text(_child(node, ("metadata", "name"), source)), node))
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
                path = (resource.index, *spec_path, field, position)
                out.append(_Container(resource, path, field, name, item))
    return out


def _inventory(resources: list[_Resource], containers: list[_Container]) -> str:
    """'Deployment/web: initContainers migrate; containers app, sidecar', for the error."""
    parts = []
    for resource in resources:
        lists = []
        for field in _CONTAINER_LISTS:
            names = [c.name or "?" for c in containers
                     if c.resource is resource and c.field == field]
            if names:
                lists.append(f"{field} {', '.join(names)}")
        if lists:
            parts.append(f"{resource}: {'; '.join(lists)}")
    return "containers found: " + (" | ".join(parts) if parts else "none")


def _image_plan(container: _Container, change: ImageChange, source: str) -> _Plan:
    where = f"{container.resource} {_show(container.path[1:])}.image"
    value = change.reference
    hit = _lookup(container.node, "image", source, where)
    if hit is None:
        return _Plan((_Set(container.path + ("image",), value),), None, value)
    key_node, node = hit
    _check_writable(key_node, node, source, where)
    if not _is_null(node) and node.tag != _STR:
        raise StructureError(f"is {_describe(node)}, not a string", source=source, path=where)
    ops: tuple[_Op, ...] = () if _already(node, value) else (
        _Set(container.path + ("image",), value, key_node, node),)  # type: ignore[arg-type]
    return _Plan(ops, _scalar_text(node), value)


# ------------------------------------------------------------------------------------ rendering

_PLAIN = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./:@+-]*")
_RESOLVERS = (VersionedResolver(version=(1, 1)), VersionedResolver(version=(1, 2)))


def _plain_ok(value: str) -> bool:
    """Plain only when every reader (go-yaml is YAML 1.1-ish, ruamel 1.2) sees a string."""
    return (bool(_PLAIN.fullmatch(value)) and not value.endswith(":")
            and all(r.resolve(ScalarNode, value, (True, False)) == _STR for r in _RESOLVERS))


def _render(value: str, style: str | None) -> str:
    """The value as YAML text in the replaced value's quoting style."""
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style == '"' or not _plain_ok(value):
        return json.dumps(value, ensure_ascii=False)
    return value


def _styled(value: str) -> str:
    """The value as ruamel should emit a new key's value: plain, or double-quoted when needed."""
    return value if _plain_ok(value) else DoubleQuotedScalarString(value)


# ------------------------------------------------------------------------------ splice in place

_PROPERTIES = re.compile(r"(?:[&!][^\s]*[ \t]+)*")


def _execute(text: str, docs: list[Node], ops: Sequence[_Op], source: str) -> str:
    """Replacements in the text first; structural ops (if any) then through ruamel."""
    in_place = [op for op in ops if isinstance(op, _Set) and op.node is not None]
    structural = [op for op in ops if not (isinstance(op, _Set) and op.node is not None)]
    text = _splice(text, [_edit(text, op) for op in in_place])
    if structural:
        text = _rewrite(text, _detect_indent(docs), structural, source)
    return text


def _edit(text: str, op: _Set) -> tuple[int, int, str]:
    """(start, end, replacement) for one existing scalar, properties like &anchor kept."""
    assert op.node is not None and op.key is not None
    start, end = op.node.start_mark.index, op.node.end_mark.index
    if start >= end:  # an empty null: its marks point at the next token, write after the colon
        colon = text.index(":", op.key.end_mark.index) + 1
        return colon, colon, " " + _render(op.value, None)
    start = _PROPERTIES.match(text, start).end()  # type: ignore[union-attr]
    return start, end, _render(op.value, op.node.style)


def _splice(text: str, edits: list[tuple[int, int, str]]) -> str:
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


# ------------------------------------------------------------------------- structure via ruamel


@dataclass(frozen=True)
class _Indent:
    mapping: int
    sequence: int
    offset: int


def _detect_indent(docs: list[Node]) -> _Indent:
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
    return _Indent(mapping, sequence, offset)


def _count_indent(key: Node, value: Node, maps: Counter[int],
                  seqs: Counter[tuple[int, int]]) -> None:
    if _is_alias(key, value) or getattr(value, "flow_style", False) or not value.value:
        return
    column = key.start_mark.column
    if isinstance(value, MappingNode):
        maps[value.value[0][0].start_mark.column - column] += 1
    elif isinstance(value, SequenceNode):
        first = value.value[0]
        content = first.value[0][0] if isinstance(first, MappingNode) and first.value else first
        seqs[(content.start_mark.column - column, value.start_mark.column - column)] += 1


_EXPLICIT_START = re.compile(r"(?:[ \t]*(?:#[^\n]*)?\n|%[^\n]*\n)*---(?:[ \t\r\n]|$)")


def _ruamel(text: str, indent: _Indent) -> YAML:
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


def _rewrite(text: str, indent: _Indent, ops: Sequence[_Op], source: str) -> str:
    """Apply structural ops with ruamel, but only on a file ruamel reproduces exactly."""
    yaml = _ruamel(text, indent)
    try:
        docs = list(yaml.load_all(text))
    except YAMLError as exc:
        raise InvalidYamlError(f"not valid YAML: {_one_line(exc)}", source=source) from exc
    before = _dump(yaml, docs, text)
    if before != text:
        raise RoundTripError(
            "keys must be added or removed, but ruamel.yaml would also rewrite unrelated content "
            f"({_first_difference(text, before)}); add the key by hand once: later updates then "
            "replace its value in place", source=source)
    for op in ops:
        _apply(docs, op)
    after = _dump(yaml, docs, text)
    _check_local(text, after, len(ops), source)
    return after


def _first_difference(a: str, b: str) -> str:
    for number, (left, right) in enumerate(zip(a.splitlines(True), b.splitlines(True)), 1):
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
            raise RoundTripError("ruamel.yaml would move a comment, blank line or document "
                                 f"marker near line {i1 + 1}; edit this file by hand once",
                                 source=source)


def _is_decoration(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#") or stripped in ("---", "...")


def _apply(docs: list[Any], op: _Op) -> None:
    index, *keys = op.path
    assert isinstance(index, int)
    while len(docs) <= index:
        docs.append(None)
    if docs[index] is None:
        docs[index] = CommentedMap()
    container = docs[index]
    if isinstance(op, _Set):
        _set_path(container, keys, _styled(op.value))
        return
    for key in keys[:-1]:
        container = container[key]
    last = keys[-1]
    if isinstance(op, _Append):
        _append_entry(container, str(last), CommentedMap(
            [(k, _styled(v)) for k, v in op.entry]))
    else:
        _delete_key(container, str(last))


_MISSING = object()


def _own(mapping: CommentedMap, key: str) -> Any:
    """A key of the mapping itself; ``get`` would also return keys merged in with ``<<``."""
    return dict(mapping.non_merged_items()).get(key, _MISSING)


def _set_path(container: Any, keys: Sequence[_Key], value: Any) -> None:
    """Walk the keys that exist, then attach the rest as one finished subtree, so the comments
    moved after it land after its last line (not between a new key and its children)."""
    for depth, key in enumerate(keys[:-1]):
        child = container[key] if isinstance(key, int) else _own(container, key)
        if child is _MISSING or child is None:
            for missing in reversed(keys[depth + 1:]):
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
    return (isinstance(node, (CommentedMap, CommentedSeq)) and len(node) > 0
            and not node.fa.flow_style())


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
