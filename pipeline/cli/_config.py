"""``pipeline config``: which config a running service has, and reloading it in every process."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from pipeline.cli._credentials import Token
from pipeline.cli._ops import DEFAULT_URL, Output, Url, field_table, render, service, when

__all__ = ["config_app"]

config_app = typer.Typer(help="The running service's config: show it, reload it (admin token).", no_args_is_help=True)


def _config_table(c: dict[str, Any]) -> Table:
    last = c["last_reload"]
    return field_table(
        [
            ("file", c["source"]),
            ("fingerprint", c["fingerprint"]),
            ("loaded", when(c["loaded_at"])),
            *[(f"project {name}", " → ".join(envs) or "(no environments)") for name, envs in c["projects"].items()],
            (
                "last reload",
                f"{last['id']} by {last['actor']} at {when(last['created_at'])}: {last['summary']}" if last else None,
            ),
        ]
    )


@config_app.command("show")
def show(url: Url = DEFAULT_URL, token: Token = None, output: Output = "table") -> None:
    """The config the answering process runs: file, fingerprint, projects, the last reload."""
    with service(url, token) as client:
        render(client.get("/api/v1/config"), output, _config_table)


@config_app.command("reload")
def reload(url: Url = DEFAULT_URL, token: Token = None, output: Output = "table") -> None:
    """Read the config file again in every process; a file that does not validate changes nothing
    (exit code 2, with each bad key)."""
    with service(url, token) as client:
        done = client.post("/api/v1/config/reload", {})
    render(
        done,
        output,
        lambda d: field_table(
            [
                ("reload", d["reload_id"]),
                ("file", d["source"]),
                ("fingerprint", f"{d['previous']} → {d['fingerprint']}"),
                ("changes", d["summary"]),
                ("restart for", ", ".join(d["restart_required"])),
                ("other processes", f"within {d['others_within_seconds']:.0f} s"),
            ]
        ),
    )
