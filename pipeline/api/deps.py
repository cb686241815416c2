"""What route handlers get injected: the config, the database, a transaction, and who asks.

Access is checked here, once per endpoint, never inside handlers: ``Allowed("builder")`` as a
dependency refuses a request whose token lacks the role (401 without a usable token, 403 with
a lesser one), and ``ActorDep`` is the name recorded on what the request causes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from pipeline.access import Principal, check_role
from pipeline.config import Config
from pipeline.errors import Unauthenticated
from pipeline.store import Database, tokens

__all__ = ["ActorDep", "Allowed", "ConfigDep", "DatabaseDep", "PrincipalDep", "SessionDep"]


def _config(request: Request) -> Config:
    return request.app.state.config  # type: ignore[no-any-return]


def _database(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


def _session(request: Request, db: Annotated[Database, Depends(_database)]) -> Iterator[Session]:
    """A transaction for the request. One that may write starts as a writer (``BEGIN IMMEDIATE``
    on SQLite): a read-then-write transaction would fail outright when a worker commits in between."""
    with db.session(immediate=request.method not in ("GET", "HEAD")) as session:
        yield session


ConfigDep = Annotated[Config, Depends(_config)]
DatabaseDep = Annotated[Database, Depends(_database)]
SessionDep = Annotated[Session, Depends(_session)]

_HOW = "send an API token as `Authorization: Bearer <token>` (an admin creates one with `pipeline tokens create`)"


def _principal(
    config: ConfigDep,
    db: DatabaseDep,
    authorization: Annotated[str | None, Header(description="`Bearer <API token>`")] = None,
    x_pipeline_actor: Annotated[
        str | None,
        Header(
            max_length=100,
            description=(
                "Who acts, recorded on what the request causes; only with api.auth: false (tokens name the actor)"
            ),
        ),
    ] = None,
) -> Principal | None:
    """The token's principal; ``None`` for a request without one (refused unless reads are open)."""
    if not config.api.auth:
        return Principal((x_pipeline_actor or "").strip() or "anonymous", "admin")
    if not authorization:
        return None
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated(f"the Authorization header is not a Bearer token; {_HOW}")
    with db.session() as session:
        row = tokens.find_token(session, secret.strip())
    if row is None:
        raise Unauthenticated("this API token is unknown or revoked")
    if tokens.due_for_touch(row):
        with db.session(immediate=True) as session:
            tokens.touch(session, row.id)
    environments = tuple(row.environments) if row.environments else None
    return Principal(row.name, row.role, environments, row.id)


PrincipalDep = Annotated[Principal | None, Depends(_principal)]


class Allowed:
    """A dependency demanding ``role``; anonymous reads pass where ``api.anonymous_read`` allows."""

    def __init__(self, role: str) -> None:
        self.role = role

    def __call__(self, principal: PrincipalDep, config: ConfigDep) -> Principal:
        if principal is None:
            if self.role == "viewer" and config.api.anonymous_read:
                return Principal("anonymous", "viewer")
            raise Unauthenticated(f"this needs a token with role {self.role} or higher; {_HOW}")
        check_role(principal, self.role)
        return principal


def _actor(principal: Annotated[Principal, Depends(Allowed("viewer"))]) -> str:
    return principal.name


ActorDep = Annotated[str, Depends(_actor)]
