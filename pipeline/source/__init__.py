"""Source: the exact pushed commit, from the project's configured repository only."""

from pipeline.git import sanitize as public_url
from pipeline.source._mirror import changed_files, checkout, mirror_path, remote_refs, update_mirror

__all__ = ["changed_files", "checkout", "mirror_path", "public_url", "remote_refs", "update_mirror"]
