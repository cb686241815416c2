"""What an update is asked to do, and how it refuses: the change, the targets, the result, the errors.

These are the public vocabulary of ``pipeline.gitops`` and carry no YAML logic, so that callers
(``_repo.write_back``, the promotion worker) and every target module can share them without
importing the editing machinery. The change and targets validate themselves on construction, so
nothing downstream ever sees half a reference or an empty key path.

Which value is written
----------------------
Helm: the last key of the path decides (case-insensitive suffix, checked in this order):
``...digest`` gets ``sha256:...``, ``...tag`` gets the tag (an error when the change has none),
``...repository`` gets the repository, anything else the full reference ``repository@digest``
(``repository:tag@digest`` with a tag). ``HelmValue.field`` overrides the rule.

Kustomize and plain manifests: see ``_kustomize`` and ``_manifest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, TypeAlias

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
                "(no tag or digest in it, e.g. registry.example.com:5000/team/app)"
            )
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
            raise InvalidTargetError(f"field {self.field!r} is not one of {choices}", path=self.path)

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
                return suffix
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
