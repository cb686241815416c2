"""``pipeline notifications``: the outbox of statuses and notifications, from the REST API."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from pipeline.cli._credentials import Token
from pipeline.cli._ops import DEFAULT_URL, Output, Url, render, service

__all__ = ["notifications"]


def notifications(
    url: Url = DEFAULT_URL,
    token: Token = None,
    output: Output = "table",
    status: Annotated[str | None, typer.Option(help="pending, running, delivered or dead.")] = None,
    project: str | None = None,
    target: Annotated[str | None, typer.Option(help="A target's name, or status:<project>.")] = None,
    build: Annotated[int | None, typer.Option("--build", help="Only this build's.")] = None,
    promotion: Annotated[int | None, typer.Option("--promotion", help="Only this promotion's.")] = None,
    limit: int = 20,
) -> None:
    """Commit statuses, deployments and notifications, newest first: delivered, waiting, or dead."""

    def table(page: dict[str, Any]) -> Table:
        counts = ", ".join(f"{n} {s}" for s, n in page.get("counts", {}).items())
        rows = Table(
            "id", "kind", "target", "event", "subject", "status", "tries", "code", "error", title=counts, box=None
        )
        for n in page["items"]:
            rows.add_row(
                str(n["id"]),
                n["kind"],
                n["target"],
                n["event"],
                n["subject"],
                n["status"],
                str(n["attempts"]),
                str(n["response_code"] or ""),
                (n["error"] or "")[:80],
            )
        if not page["items"]:
            rows.caption = "none"
        return rows

    with service(url, token) as client:
        page = client.get(
            "/api/v1/notifications",
            status=status,
            project=project,
            target=target,
            build_id=build,
            promotion_id=promotion,
            limit=limit,
        )
        render(page, output, table)
