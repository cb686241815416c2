"""What every Git host client shares: where its API is, what a status says, and the states.

A status is said once, in our words (``pending``, ``running``, ``success``, ``failure``,
``error``); each host module (``_github``, ``_gitlab``, ``_gitea``, ``_bitbucket``,
``_bitbucket_dc``) turns it into its API's request as that API documents it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

__all__ = ["DEFAULT_API", "STATES", "Host", "State", "StatusUpdate", "repository_path"]

State = Literal["pending", "running", "success", "failure", "error"]
STATES: tuple[str, ...] = ("pending", "running", "success", "failure", "error")

# The public hosts' APIs; self-hosted ones (Gitea, Forgejo, Bitbucket Data Center, GitHub
# Enterprise, a GitLab of one's own) are given as ``status.api_url``.
DEFAULT_API = {
    "github": "https://api.github.com",
    "gitlab": "https://gitlab.com",
    "bitbucket": "https://api.bitbucket.org",
}


@dataclass(frozen=True)
class Host:
    """One project's repository on one host, with the token read for this delivery only."""

    provider: str
    api_url: str  # GitHub: the API root (GHE: https://host/api/v3); others: the server's root
    repository: str  # owner/name, GitLab's path or id, Bitbucket's workspace/repo
    token: str

    def __repr__(self) -> str:  # never print the token
        return f"Host({self.provider}, {self.api_url}, {self.repository})"


@dataclass(frozen=True)
class StatusUpdate:
    sha: str
    state: State
    context: str  # pipeline/build, pipeline/deploy/prod
    description: str
    target_url: str | None


def repository_path(repo_url: str) -> str | None:
    """``owner/name`` from a clone URL (https, ssh or scp-like), without ``.git``."""
    if "://" in repo_url:
        path = urlsplit(repo_url).path
    elif ":" in repo_url:  # git@github.com:owner/name.git
        path = repo_url.split(":", 1)[1]
    else:
        return None
    path = path.strip("/").removesuffix(".git")
    return path or None
