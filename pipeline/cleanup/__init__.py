"""Retention: the registry cleanup by Git history (``_policy`` plans, ``_execute`` deletes) and
the service's own disk (``_disk``: build logs, Git mirrors, builder caches, sizes)."""

from pipeline.cleanup._disk import LogsRetained, data_dir_sizes, prune_builders, retain_logs
from pipeline.cleanup._duty import Retained, clean_registries, run_retention
from pipeline.cleanup._execute import DeletedImage, ProjectCleanup, clean_project, plan_project
from pipeline.cleanup._history import gc_mirrors, git_facts
from pipeline.cleanup._policy import Decision, GitFacts, Plan, plan

__all__ = [
    "Decision",
    "DeletedImage",
    "GitFacts",
    "LogsRetained",
    "Plan",
    "ProjectCleanup",
    "Retained",
    "clean_project",
    "clean_registries",
    "data_dir_sizes",
    "gc_mirrors",
    "git_facts",
    "plan",
    "plan_project",
    "prune_builders",
    "retain_logs",
    "run_retention",
]
