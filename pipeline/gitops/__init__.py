"""GitOps write-back: put a promoted image digest into an environment's deploy repository.

This package edits YAML text only (``update_yaml``); cloning, committing and pushing are the
caller's. Errors are ``UpdateError`` (a ``ValueError``) subclasses, each naming the file and key
path, for the caller to map into ``pipeline.errors``.
"""

from __future__ import annotations

from pipeline.gitops._update import (
    AmbiguousTargetError,
    HelmField,
    HelmValue,
    ImageChange,
    InvalidChangeError,
    InvalidTargetError,
    InvalidYamlError,
    KustomizeImage,
    ManifestContainer,
    RoundTripError,
    StructureError,
    Target,
    TargetNotFoundError,
    UpdateError,
    UpdateResult,
    update_yaml,
)

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
