"""Commands that act on builds through the service: ``build``, ``rebuild``, ``cancel``, ``logs``.

Each is one REST call of ``/api/v1/builds`` (``POST``, ``POST {id}/rebuild``, ``POST
{id}/cancel``, ``GET {id}/logs``); ``--follow`` then streams the log until the build ends and
the exit code says how it ended (``_remote``'s codes: 1 failed or cancelled).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from pipeline.cli._credentials import Token
from pipeline.cli._ops import DEFAULT_URL, Output, Url, builds_app, errors, field_table, render, service, when
from pipeline.cli._remote import EXIT, ServiceClient

__all__ = ["follow_logs", "register"]

Follow = Annotated[bool, typer.Option("--follow", "-f", help="Stream the log until the build ends.")]
_ENDED_BADLY = {"failed", "cancelled"}


def _queued_fields(b: dict[str, Any]) -> Any:
    return field_table(
        [
            ("build", b["id"]),
            ("project", b["project"]),
            ("ref", b["ref"]),
            ("commit", b["commit"]),
            ("status", b["status"]),
            ("by", b.get("actor")),
            ("created", when(b["created_at"])),
        ]
    )


def _print_log_lines(lines: list[dict[str, Any]]) -> None:
    for line in lines:
        sys.stdout.write(line["line"] + "\n")  # as written: never read as markup


def follow_logs(client: ServiceClient, build_id: int, follow: bool) -> None:
    """Print the build's log; with ``follow``, as it is written, then end with the build's outcome."""
    path = f"/api/v1/builds/{build_id}/logs"
    if not follow:
        _print_log_lines(client.get(path)["lines"])
        return
    end = None
    for raw in client.stream_lines(path, follow="true"):
        item = json.loads(raw) if raw.strip() else {}
        if item.get("end"):
            end = item["status"]
        elif "line" in item:
            _print_log_lines([item])
            sys.stdout.flush()
    errors.print(f"build {build_id} {end}")
    if end in _ENDED_BADLY:
        raise typer.Exit(EXIT["outcome"])


def _queued(client: ServiceClient, build: dict[str, Any], output: str, follow: bool) -> None:
    if follow:
        errors.print(f"build {build['id']} queued: {build['project']} {build['ref']} {build['commit']}")
        follow_logs(client, build["id"], True)
        return
    render(build, output, _queued_fields)


def build(
    project: str,
    ref: Annotated[str | None, typer.Option("--ref", help="A branch or tag, built as it is now.")] = None,
    commit: Annotated[str | None, typer.Option("--commit", help="An exact commit (40 hex digits).")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    output: Output = "table",
    follow: Follow = False,
) -> None:
    """Queue a build of a branch, tag or commit, as if it had been pushed."""
    if (ref is None) == (commit is None):
        errors.print("error: give exactly one of --ref BRANCH_OR_TAG or --commit SHA")
        raise typer.Exit(EXIT["invalid"])
    with service(url, token) as client:
        _queued(
            client, client.post("/api/v1/builds", {"project": project, "ref": ref, "commit": commit}), output, follow
        )


def rebuild(
    build_id: int, url: Url = DEFAULT_URL, token: Token = None, output: Output = "table", follow: Follow = False
) -> None:
    """Queue the same commit and ref as build ID again (recorded as `rebuild of ID by NAME`)."""
    with service(url, token) as client:
        _queued(client, client.post(f"/api/v1/builds/{build_id}/rebuild"), output, follow)


def cancel(build_id: int, url: Url = DEFAULT_URL, token: Token = None, output: Output = "table") -> None:
    """Cancel a queued or running build (a running one stops at its next heartbeat)."""
    with service(url, token) as client:
        done = client.post(f"/api/v1/builds/{build_id}/cancel")
    render(done, output, _queued_fields)


def logs(build_id: int, url: Url = DEFAULT_URL, token: Token = None, follow: Follow = False) -> None:
    """A build's output; with -f, as it is written, then the exit code says how it ended."""
    with service(url, token) as client:
        follow_logs(client, build_id, follow)


def register(app: typer.Typer) -> None:
    """The build commands on the main ``pipeline`` command; ``logs`` also as ``builds logs``."""
    for command in (build, rebuild, cancel, logs):
        app.command()(command)
    builds_app.command("logs")(logs)
