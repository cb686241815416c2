"""GitOps write-back: put a promoted image digest into an environment's deploy repository.

``update_yaml`` edits YAML text only and knows no git; ``write_back`` clones from a mirror,
applies such an edit, commits and pushes, retrying when the branch moved. Edit errors are
``UpdateError`` (a ``ValueError``) subclasses naming the file and key path; ``write_back``
turns them into ``ConfigError``.
"""

from __future__ import annotations

from pipeline.gitops._pulls import GitHubPulls, PullRequest, PullRequestHost, pull_request_host
from pipeline.gitops._repo import Pushed, gitops_mirror, write_back
from pipeline.gitops._types import (
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
)
from pipeline.gitops._update import update_yaml

__all__ = [
    "AmbiguousTargetError",
    "GitHubPulls",
    "HelmField",
    "HelmValue",
    "ImageChange",
    "InvalidChangeError",
    "InvalidTargetError",
    "InvalidYamlError",
    "KustomizeImage",
    "ManifestContainer",
    "PullRequest",
    "PullRequestHost",
    "Pushed",
    "RoundTripError",
    "StructureError",
    "Target",
    "TargetNotFoundError",
    "UpdateError",
    "UpdateResult",
    "gitops_mirror",
    "pull_request_host",
    "update_yaml",
    "write_back",
]
