"""The scheduled retention duty (``cleanup: {schedule: 1d}``): every project's registry cleanup,
then the service's own disk. One project's failure is logged and the others still run."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pipeline.cleanup._disk import LogsRetained, prune_builders, retain_logs
from pipeline.cleanup._execute import ProjectCleanup, clean_project
from pipeline.cleanup._history import gc_mirrors
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.store import Database

__all__ = ["Retained", "clean_registries", "run_retention"]

log = logging.getLogger(__name__)


@dataclass
class Retained:
    projects: list[ProjectCleanup] = field(default_factory=list)
    mirrors_collected: list[str] = field(default_factory=list)
    logs: LogsRetained | None = None
    pruned: list[str] = field(default_factory=list)


def clean_registries(
    db: Database, config: Config, *, dry_run: bool, project: str | None = None
) -> list[ProjectCleanup]:
    """The registry cleanup of one project (raises ``NotFound`` for an unknown one) or of all."""
    if project is not None:
        config.project(project)  # NotFound names the projects there are
    names = [project] if project is not None else list(config.projects)
    reports = []
    for name in names:
        try:
            reports.append(clean_project(db, config, name, dry_run=dry_run))
        except PipelineError as exc:  # Git unreachable, say: this project waits for the next run
            if project is not None:
                raise
            failed = ProjectCleanup(name, dry_run, errors=[exc.message])
            log.warning("project %s: cleanup failed: %s", name, exc.message)
            reports.append(failed)
    return reports


def run_retention(db: Database, config: Config) -> Retained:
    """Everything retention does on its schedule."""
    done = Retained(clean_registries(db, config, dry_run=False))
    if config.cleanup.git_gc:
        done.mirrors_collected = gc_mirrors(config)
    if config.cleanup.logs is not None:
        done.logs = retain_logs(db, config, config.cleanup.logs)
    done.pruned = prune_builders(config)
    return done
