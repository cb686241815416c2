"""``pipeline cleanup``: one call to ``POST /api/v1/cleanup``, every image printed with the reason
it is kept or deleted; ``--dry-run`` deletes nothing."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from pipeline.cli._credentials import Token
from pipeline.cli._ops import DEFAULT_URL, Output, Url, console, cut, errors, short_digest
from pipeline.cli._remote import EXIT, RemoteError, ServiceClient

__all__ = ["cleanup"]


def _table(project: dict[str, Any]) -> Table:
    verb = "would delete" if project["dry_run"] else "deleted"
    title = f"{project['project']}: {verb} {project['deleted']}, kept {project['kept']} ({project['seconds']:.1f} s)"
    table = Table("build", "branch", "commit", "digest", "action", "reason", box=None, title=title)
    for d in project["decisions"]:
        table.add_row(
            str(d["build_id"]),
            d["branch"] or "-",
            cut(d["commit"], 7),
            short_digest(d["digest"]),
            d["action"],
            d["reason"],
        )
    return table


def cleanup(
    url: Url = DEFAULT_URL,
    token: Token = None,
    output: Output = "table",
    project: Annotated[str | None, typer.Option(help="One project (default: all).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be deleted, and why.")] = False,
) -> None:
    """Delete build images no retention rule keeps (tags, signatures, then the manifest)."""
    try:
        with ServiceClient(url, token=token, timeout=1800) as client:
            done = client.post("/api/v1/cleanup", {"project": project, "dry_run": dry_run})
    except RemoteError as exc:
        errors.print(f"error: {exc.message}", markup=False)
        raise typer.Exit(exc.exit_code) from None
    if output == "json":
        sys.stdout.write(json.dumps(done, indent=2) + "\n")
    else:
        for found in done["projects"]:
            console.print(_table(found))
    refused = [p for p in done["projects"] if p["refused"] or p["errors"]]
    for found in refused:
        for line in ([found["refused"]] if found["refused"] else []) + found["errors"]:
            errors.print(f"{found['project']}: {line}", markup=False)
    if any(p["refused"] for p in done["projects"]):
        raise typer.Exit(EXIT["outcome"])
