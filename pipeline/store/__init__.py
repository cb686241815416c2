"""Persistence: every SQL statement of the service lives in this package.

Query functions take a ``Session`` and never commit; the caller (an API dependency, a worker
iteration, a CLI command) owns the transaction through ``Database.session()``.
"""

from pipeline.store import (
    builds,
    deliveries,
    jobs,
    locks,
    matrix,
    metrics,
    notifications,
    pages,
    projects,
    promotions,
    reloads,
    retention,
    tokens,
    verifications,
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
    Notification,
    Project,
    Promotion,
    RejectedDigest,
    Verification,
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
    "Notification",
    "Project",
    "Promotion",
    "RejectedDigest",
    "Verification",
    "builds",
    "current_revision",
    "deliveries",
    "head_revision",
    "jobs",
    "locks",
    "matrix",
    "metrics",
    "migrate",
    "notifications",
    "open_database",
    "pages",
    "projects",
    "promotions",
    "reloads",
    "retention",
    "tokens",
    "utcnow",
    "verifications",
    "wakeups",
]
