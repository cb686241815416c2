"""``pipeline deliveries``: the webhook delivery log, and redelivering a stored delivery."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from pipeline.cli._ops import DEFAULT_URL, Output, Url, render, service, when

__all__ = ["deliveries_app"]

deliveries_app = typer.Typer(
    help="Webhook deliveries as they arrived, refused ones included (viewer token); redeliver (builder token).",
    invoke_without_command=True,
)


def _table(page: dict[str, Any]) -> Table:
    table = Table("id", "received", "provider", "project", "event", "outcome", "status", "builds", "reason", box=None)
    for d in page["items"]:
        table.add_row(
            str(d["id"]),
            when(d["received_at"]),
            d["provider"],
            d["project"] or "-",
            d["event"] or "-",
            d["outcome"],
            str(d["status_code"]),
            ", ".join(map(str, d["build_ids"])) or "-",
            (d["reason"] or "")[:80],
        )
    return table


@deliveries_app.callback()
def deliveries(
    ctx: typer.Context,
    url: Url = DEFAULT_URL,
    output: Output = "table",
    project: Annotated[str | None, typer.Option(help="Only this project's.")] = None,
    provider: Annotated[str | None, typer.Option(help="Only from this provider (github, gitlab, ...).")] = None,
    outcome: Annotated[
        str | None, typer.Option(help="Only this outcome (queued, duplicate, bad_signature, ...).")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Only received at or after this time (RFC 3339).")] = None,
    limit: int = 20,
) -> None:
    """Recent webhook deliveries, newest first: what arrived, what it was answered, and why."""
    if ctx.invoked_subcommand is not None:
        return
    with service(url) as client:
        page = client.get(
            "/api/v1/deliveries", project=project, provider=provider, outcome=outcome, since=since, limit=limit
        )
    render(page, output, _table)


@deliveries_app.command("redeliver")
def redeliver(delivery_id: int, url: Url = DEFAULT_URL, output: Output = "table") -> None:
    """Run intake again on a stored delivery's body, as the Git host's Redeliver button does."""
    with service(url) as client:
        answer = client.post(f"/api/v1/deliveries/{delivery_id}/redeliver", {})
    render(answer, output, _answer_table)


def _answer_table(answer: dict[str, Any]) -> Table:
    table = Table("outcome", "project", "builds", "reason", box=None)
    table.add_row(
        answer["outcome"], answer["project"] or "-", ", ".join(map(str, answer["build_ids"])) or "-", answer["reason"]
    )
    return table
