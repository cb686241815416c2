"""Git plumbing that the source stage and the GitOps write-back share: running git with a clean
environment and credentials only in that environment, and bare mirrors fetched one at a time.

Neither stage's knowledge lives here: which commit to build is ``source``'s, what to edit and
push is ``gitops``'s.
"""

from pipeline.git._mirror import fetch_mirror, locked
from pipeline.git._run import AUTOCRLF, auth_env, run_git, sanitize

__all__ = ["AUTOCRLF", "auth_env", "fetch_mirror", "locked", "run_git", "sanitize"]
