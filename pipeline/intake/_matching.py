"""Which configured project a payload's repository is.

Hosts name a repository differently (HTTPS clone URL, SSH ``git@host:o/r.git``, web URL,
or only ``owner/name`` for Bitbucket), so both sides are reduced to ``host/path`` and the
path alone is a fallback only when exactly one project has it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from pipeline.config import ProjectConfig

__all__ = ["match_project", "normalize_repo"]

_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>(?!//).+)$")


@functools.lru_cache(maxsize=4096)  # configured URLs are normalized on every delivery
def normalize_repo(url: str) -> tuple[str, str]:
    """``(host, path)`` with case, scheme, credentials, ``.git`` and slashes folded away."""
    url = url.strip()
    if "://" in url:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.port and parts.scheme not in ("ssh", "git") and parts.port not in (80, 443):
            host = f"{host}:{parts.port}"
        path = parts.path
    elif (scp := _SCP_LIKE.match(url)) is not None:
        host, path = scp["host"].lower(), scp["path"]
    else:
        host, path = "", url
    path = path.strip("/").removesuffix(".git").strip("/").lower()
    return host, path


def match_project(projects: Mapping[str, ProjectConfig], urls: Iterable[str], full_name: str | None) -> str | None:
    """The project's name, or ``None``; a bare path matches only when it is unambiguous."""
    wanted = {normalize_repo(u) for u in urls if u}
    by_path: dict[str, list[str]] = {}
    for name, project in projects.items():
        key = normalize_repo(project.repo)
        if key in wanted:
            return name
        by_path.setdefault(key[1], []).append(name)
    paths = {path for _, path in wanted}
    if full_name:
        paths.add(full_name.strip("/").lower())
    candidates = {name for path in paths for name in by_path.get(path, [])}
    return candidates.pop() if len(candidates) == 1 else None
