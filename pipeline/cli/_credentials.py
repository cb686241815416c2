"""The API token of a command that talks to the service (``--token``, else ``PIPELINE_TOKEN``)
and what a refusal says when the token is missing or wrong."""

from __future__ import annotations

import os
from typing import Annotated

import typer

__all__ = ["Token", "explain_unauthenticated"]

Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="PIPELINE_TOKEN",
        show_envvar=False,
        metavar="TOKEN",
        help="API token (PIPELINE_TOKEN); `pipeline tokens create` makes one.",
    ),
]


def explain_unauthenticated(detail: str, sent: str | None) -> str:
    """The service's 401 explanation, with what to do about it here on the command line."""
    if not sent:
        return (
            f"{detail}\nno API token was given: set PIPELINE_TOKEN or pass --token "
            "(`pipeline serve` prints the first admin token; `pipeline tokens create` makes more)"
        )
    source = "PIPELINE_TOKEN" if sent == os.environ.get("PIPELINE_TOKEN") else "--token"
    return f"{detail}\nthe token in {source} was refused: check it, or make a new one with `pipeline tokens create`"
