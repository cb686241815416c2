"""Persistence: every SQL statement of the service lives in this package.

Query functions take a ``Session`` and never commit; the caller (an API dependency, a worker
iteration, a CLI command) owns the transaction through ``Database.session()``.
"""

from pipeline.store import (
    builds,
    deliveries,
    delivery_log,
    jobs,
    locks,
    matrix,
    metrics,
    pages,
    projects,
    promotions,
    reloads,
    tokens,
    wakeups,
)
from pipeline.store.database import (
    Database,
    current_revision,
    head_revision,
    migrate,
    open_database,
)
from pipeline.store.tables import (
    ApiToken,
    Build,
    BuildLog,
    ConfigReload,
    Delivery,
    EnvironmentHold,
    Project,
    Promotion,
    RejectedDigest,
    utcnow,
)

__all__ = [
    "ApiToken",
    "Build",
    "BuildLog",
    "ConfigReload",
    "Database",
    "Delivery",
    "EnvironmentHold",
    "Project",
    "Promotion",
    "RejectedDigest",
    "builds",
    "current_revision",
    "deliveries",
    "delivery_log",
    "head_revision",
    "jobs",
    "locks",
    "matrix",
    "metrics",
    "migrate",
    "open_database",
    "pages",
    "projects",
    "promotions",
    "reloads",
    "tokens",
    "utcnow",
    "wakeups",
]
