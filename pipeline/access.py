"""Who may do what: API roles, and the principal a request acts as.

Roles are ordered, each allowing what the one before it does: viewer (read), builder
(+ trigger and cancel builds), promoter (+ promote, roll back, release, reject; optionally
only for named environments), admin (+ tokens). The principal's name is the actor recorded
on everything the request causes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.errors import Forbidden, InvalidRequest

__all__ = ["ROLES", "Principal", "check_role"]

ROLES = ("viewer", "builder", "promoter", "admin")


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    environments: tuple[str, ...] | None = None  # a promoter limited to these; None = every one
    token_id: int | None = None

    def allows(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def parse_role(role: str, environments: Sequence[str] = ()) -> tuple[str, tuple[str, ...] | None]:
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if environments and role != "promoter":
        raise InvalidRequest("only a promoter token can be limited to environments")
    return role, tuple(environments) or None


def check_role(principal: Principal, role: str, environment: str | None = None) -> None:
    """Raise ``Forbidden`` unless ``principal`` has ``role`` (and, for a limited promoter, the environment)."""
    if not principal.allows(role):
        raise Forbidden(f"{principal.name} has role {principal.role}; this needs {role} or higher")
    limited = principal.role == "promoter" and principal.environments is not None
    if limited and environment is not None and environment not in (principal.environments or ()):
        raise Forbidden(
            f"{principal.name} may promote only to {', '.join(principal.environments or ())}, not to {environment}"
        )
