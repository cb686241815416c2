"""What route handlers get injected: the config, the database, a transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from pipeline.config import Config
from pipeline.store import Database

__all__ = ["ActorDep", "ConfigDep", "DatabaseDep", "SessionDep"]


def _config(request: Request) -> Config:
    return request.app.state.config  # type: ignore[no-any-return]


def _database(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


def _session(db: Annotated[Database, Depends(_database)]) -> Iterator[Session]:
    with db.session() as session:
        yield session


ConfigDep = Annotated[Config, Depends(_config)]
DatabaseDep = Annotated[Database, Depends(_database)]
SessionDep = Annotated[Session, Depends(_session)]


def _actor(x_pipeline_actor: Annotated[str | None, Header(max_length=255, description=(
        "Who asks (recorded on what the request causes); API tokens will name the actor instead"))] = None) -> str:
    return (x_pipeline_actor or "").strip() or "api"


ActorDep = Annotated[str, Depends(_actor)]
