"""``pipeline tokens``: API tokens. With ``--config`` (or ``PIPELINE_CONFIG``) straight in the
database, which is how the first admin token is made; otherwise through a running service
with an admin token (``--url``, ``PIPELINE_TOKEN``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pipeline.cli._credentials import Token
from pipeline.cli._ops import DEFAULT_URL, Url, console, service, when

__all__ = ["tokens_app"]

tokens_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)

LocalConfig = Annotated[Path | None, typer.Option("--config", "-c", help="Work on the database directly.")]


def _local(config: Path | None) -> Any:
    """The database of ``config`` when working locally, else ``None`` (talk to the service)."""
    if config is None and not os.environ.get("PIPELINE_CONFIG"):
        return None
    from pipeline.config import load_config
    from pipeline.store import open_database

    return open_database(load_config(config).effective_database_url)


def _row(row: Any) -> dict[str, Any]:
    fields = ("id", "name", "role", "environments", "prefix", "created_by", "created_at", "last_used_at", "revoked_at")
    return {
        f: (getattr(row, f).isoformat() if hasattr(getattr(row, f), "isoformat") else getattr(row, f)) for f in fields
    }


@tokens_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who uses it: recorded as the actor.")],
    role: Annotated[str, typer.Option(help="viewer, builder, promoter or admin.")],
    env: Annotated[list[str] | None, typer.Option("--env", help="Limit a promoter to this environment.")] = None,
    config: LocalConfig = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Create a token and print it once: it is stored only as a hash."""
    db = _local(config)
    if db is not None:
        from pipeline.access import parse_role
        from pipeline.store import tokens

        role, environments = parse_role(role, env or [])
        with db.session() as session:
            _, secret = tokens.create_token(
                session,
                name=name,
                role=role,
                created_by=f"cli:{os.environ.get('USER', '?')}",
                environments=list(environments) if environments else None,
            )
    else:
        with service(url, token) as client:
            secret = client.post("/api/v1/tokens", {"name": name, "role": role, "environments": env or []})["token"]
    sys.stderr.write(f"token for {name} ({role}); shown once, keep it in a secret store:\n")
    sys.stdout.write(secret + "\n")


@tokens_app.command("ls")
def list_tokens(config: LocalConfig = None, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Every token with its role and last use; never the token itself."""
    db = _local(config)
    if db is not None:
        from pipeline.store import tokens

        with db.session() as session:
            rows = [_row(r) for r in tokens.list_tokens(session)]
    else:
        with service(url, token) as client:
            rows = client.get("/api/v1/tokens")
    table = Table("id", "name", "role", "environments", "prefix", "last used", "revoked", box=None)
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["name"],
            r["role"],
            ", ".join(r["environments"] or []) or "all",
            r["prefix"],
            when(r["last_used_at"]),
            when(r["revoked_at"]),
        )
    console.print(table)


@tokens_app.command("revoke")
def revoke(token_id: int, config: LocalConfig = None, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Revoke a token; requests with it are refused from now on."""
    db = _local(config)
    if db is not None:
        from pipeline.store import tokens

        with db.session() as session:
            tokens.revoke_token(session, token_id)
    else:
        with service(url, token) as client:
            client.post(f"/api/v1/tokens/{token_id}/revoke")
    console.print(f"token {token_id} revoked")
