"""Commands for ops against a running service: builds, promotions, environments, images.

Each command is one REST call (or a call and a wait), printed as a table, or as the API's
JSON with ``--output json`` for scripts. Exit codes are listed in ``_remote``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipeline.cli._credentials import Token
from pipeline.cli._remote import EXIT, RemoteError, ServiceClient

__all__ = ["builds_app", "cut", "images_app", "promotions_app", "register", "short_digest"]

builds_app = typer.Typer(help="Builds: list, show, follow logs (and `pipeline build`).", no_args_is_help=True)
promotions_app = typer.Typer(help="Promotion history.", no_args_is_help=True)
images_app = typer.Typer(help="Images by digest: lineage, rejection.", no_args_is_help=True)

Url = Annotated[str, typer.Option("--url", envvar="PIPELINE_URL", help="The service (PIPELINE_URL).")]
Output = Annotated[str, typer.Option("--output", "-o", help="table or json.")]
Wait = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until it has finished, showing progress.")]
DEFAULT_URL = "http://127.0.0.1:8080"
_TERMINAL = {"succeeded", "failed", "cancelled", "superseded", "skipped", "rejected", "awaiting_merge"}
_BAD = {"failed", "rejected", "cancelled"}

PIPED_WIDTH = 100_000  # piped output is read by scripts: never wrap or cut a cell


def _console(*, stderr: bool) -> Console:
    """Markup off: what is printed comes from outside (errors, logs, commit messages, names) and
    may hold ``[...]``, such as BuildKit's ``[/bin/sh -c ...]``; styles come from ``Text``."""
    at_terminal = Console(stderr=stderr).is_terminal
    return Console(stderr=stderr, markup=False, highlight=False, width=None if at_terminal else PIPED_WIDTH)


console = _console(stderr=False)
errors = _console(stderr=True)


@contextmanager
def service(url: str, token: str | None = None) -> Iterator[ServiceClient]:
    """A client whose failures end the command with the message and its exit code; ``token``
    is the command's ``--token`` (which reads ``PIPELINE_TOKEN``)."""
    try:
        with ServiceClient(url, token=token) as client:
            yield client
    except RemoteError as exc:
        errors.print(f"error: {exc.message}", markup=False)
        raise typer.Exit(exc.exit_code) from None


def cut(value: str | None, length: int) -> str:
    """``value`` shortened to ``length`` for a person at a terminal; whole when piped, so that
    scripts always get full ids and digests."""
    if not value:
        return "-"
    return value[:length] if console.is_terminal else value


def short_digest(digest: str | None) -> str:
    """12 hex digits for a person at a terminal; the whole digest when piped."""
    if digest and console.is_terminal:
        return digest.removeprefix("sha256:")[:12]
    return digest or "-"


_short = short_digest  # the older name, still used by code merged from elsewhere


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _timings(timings: dict[str, float] | None) -> str | None:
    """``queue 1.2 s, checkout 0.4 s, build 42 s, …`` in the order the steps ran."""
    if not timings:
        return None
    return ", ".join(f"{name} {_seconds(value)}" for name, value in timings.items())


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else _duration(value)


def _copied(report: dict[str, Any] | None) -> str | None:
    """The copy report: what moved and what the target had already."""
    if not report:
        return None
    return (
        f"{report.get('blobs_copied', 0)} blobs copied ({report.get('bytes_copied', 0)} bytes), "
        f"{report.get('blobs_present', 0)} skipped (present), {report.get('blobs_mounted', 0)} mounted"
    )


def when(value: str | None) -> str:
    return value.replace("T", " ")[:19] if value else "-"


def render(data: Any, output: str, table: Callable[[Any], Table]) -> None:
    if output == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    elif output == "table":
        console.print(table(data))
    else:
        errors.print(f"error: --output is table or json, not {output!r}")
        raise typer.Exit(EXIT["invalid"])


def _builds_table(page: dict[str, Any]) -> Table:
    table = Table("id", "project", "branch", "commit", "status", "digest", "by", "created", box=None)
    for b in page["items"]:
        table.add_row(
            str(b["id"]),
            b["project"],
            b["branch"] or b["ref"],
            cut(b["commit"], 7),
            b["status"],
            short_digest(b["digest"]),
            b.get("actor") or b["trigger"],
            when(b["created_at"]),
        )
    return table


def field_table(pairs: list[tuple[str, Any]]) -> Table:
    table = Table(box=None, show_header=False)
    for name, value in pairs:
        table.add_row(name, "-" if value in (None, "", []) else str(value))
    return table


@builds_app.command("ls")
def builds_ls(
    url: Url = DEFAULT_URL,
    token: Token = None,
    output: Output = "table",
    project: str | None = None,
    branch: str | None = None,
    status: str | None = None,
    limit: int = 20,
) -> None:
    """Recent builds, newest first."""
    with service(url, token) as client:
        render(
            client.get("/api/v1/builds", project=project, branch=branch, status=status, limit=limit),
            output,
            _builds_table,
        )


@builds_app.command("show")
def builds_show(build_id: int, url: Url = DEFAULT_URL, token: Token = None, output: Output = "table") -> None:
    """One build: commit, digest, engine, cache, error."""
    with service(url, token) as client:
        b = client.get(f"/api/v1/builds/{build_id}")
    render(
        b,
        output,
        lambda b: field_table(
            [
                ("build", b["id"]),
                ("project", b["project"]),
                ("ref", b["ref"]),
                ("commit", b["commit"]),
                ("status", b["status"]),
                ("trigger", b["trigger"]),
                ("by", b.get("actor")),
                ("image", b["image"]),
                ("tags", ", ".join(b["tags"])),
                ("engine", b["engine"]),
                ("steps cached", f"{b['steps_cached']}/{b['steps_total']}" if b["steps_total"] else None),
                ("size", b["image_size"]),
                ("started", when(b["started_at"])),
                ("finished", when(b["finished_at"])),
                ("timings", _timings(b.get("timings"))),
                ("error", b["error"]),
            ]
        ),
    )


def _promotion_fields(p: dict[str, Any]) -> Table:
    return field_table(
        [
            ("promotion", p["id"]),
            ("project", p["project"]),
            ("environment", p["environment"]),
            ("digest", p["digest"]),
            ("build", p["build_id"]),
            ("status", p["status"]),
            ("trigger", p["trigger"]),
            ("actor", p["actor"]),
            ("reason", p["reason"]),
            ("from", p["source_ref"]),
            ("to", p["target_ref"]),
            ("previous", p["previous_digest"]),
            ("git commit", p.get("gitops_commit")),
            ("copied", _copied(p.get("copy_report"))),
            ("error", p["error"]),
            *[
                (f"step {s['kind']}", f"{s['status']} in {_seconds(s['seconds'])}: {s['message']}")
                if "seconds" in s
                else (f"step {s['kind']}", f"{s['status']}: {s['message']}")
                for s in p["steps"]
            ],
            *_smoke_logs(p["steps"]),
            *_verification(p.get("verification")),
        ]
    )


def _smoke_logs(steps: list[dict[str, Any]]) -> list[tuple[str, object]]:
    """The last lines of a smoke test's container log (the whole log is in ``-o json``)."""
    return [
        ("smoke-test log", "\n".join(s["log"][-10:])) for s in steps if s.get("kind") == "smoke-test" and s.get("log")
    ]


def _verification(found: dict[str, Any] | None) -> list[tuple[str, object]]:
    if not found:
        return []
    answer = found.get("last_answer") or {}
    seen = answer.get("error") or (f"{answer.get('status')} {str(answer.get('body', ''))[:80]!r}" if answer else "-")
    rows: list[tuple[str, object]] = [
        ("verification", f"{found['status']} after {found['checks']} checks of {found['url']}"),
        ("last answer", seen),
    ]
    if found.get("error"):
        rows.append(("verification error", found["error"]))
    if found.get("rollback_id"):
        rows.append(("rolled back by", f"promotion {found['rollback_id']}"))
    return rows


def _wait_for_promotion(client: ServiceClient, promotion: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """Poll until the promotion ends, printing each step as it completes."""
    shown, deadline = 0, time.monotonic() + timeout
    while promotion["status"] not in _TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        promotion = client.get(f"/api/v1/promotions/{promotion['id']}")
        for step in promotion["steps"][shown:]:
            errors.print(f"  {step['kind']}: {step['status']}: {step['message']}", markup=False)
        shown = len(promotion["steps"])
    return promotion


def _finish(client: ServiceClient, promotion: dict[str, Any], wait: bool, output: str) -> None:
    if wait:
        errors.print(
            f"promotion {promotion['id']}: {promotion['digest']} to {promotion['project']}/{promotion['environment']}",
            markup=False,
        )
        promotion = _wait_for_promotion(client, promotion)
    render(promotion, output, _promotion_fields)
    if promotion["status"] in _BAD:
        raise typer.Exit(EXIT["outcome"])


def promote(
    project: str,
    environment: str,
    url: Url = DEFAULT_URL,
    token: Token = None,
    output: Output = "table",
    wait: Wait = True,
    build: Annotated[int | None, typer.Option(help="The build whose digest to promote.")] = None,
    digest: Annotated[str | None, typer.Option(help="The digest to promote (sha256:...).")] = None,
    reason: str = "",
) -> None:
    """Promote a built digest to an environment (by build id or digest)."""
    with service(url, token) as client:
        asked = client.post(
            "/api/v1/promotions",
            {"project": project, "environment": environment, "digest": digest, "build_id": build, "reason": reason},
        )
        _finish(client, asked, wait, output)


def rollback(
    project: str,
    environment: str,
    url: Url = DEFAULT_URL,
    token: Token = None,
    output: Output = "table",
    wait: Wait = True,
    reason: str = "",
) -> None:
    """Promote what ran before, and hold automatic promotion until `pipeline release`."""
    with service(url, token) as client:
        asked = client.post(f"/api/v1/environments/{project}/{environment}/rollback", {"reason": reason})
        _finish(client, asked, wait, output)


def release(project: str, environment: str, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Let automatic promotion into a held environment resume."""
    with service(url, token) as client:
        hold = client.post(f"/api/v1/environments/{project}/{environment}/release")
    console.print(
        f"{project}/{environment} released (held since {when(hold['created_at'])}: {hold['reason']})", markup=False
    )


def _matrix_table(matrix: dict[str, Any]) -> Table:
    table = Table(
        "project",
        "environment",
        "digest",
        "commit",
        "since",
        "by",
        "previous",
        "held",
        "lead time (median / p90)",
        box=None,
    )
    for e in matrix["items"]:
        now, before = e["current"] or {}, e["previous"] or {}
        held = f"by {e['held']['actor']}" if e["held"] else ""
        lead = e.get("lead_time")
        lead_text = f"{_duration(lead['median_seconds'])} / {_duration(lead['p90_seconds'])}" if lead else "-"
        table.add_row(
            e["project"],
            e["environment"],
            short_digest(now.get("digest")) + (" REJECTED" if e.get("rejected") else ""),
            cut(now.get("commit"), 7),
            when(now.get("since")),
            now.get("actor") or "-",
            short_digest(before.get("digest")) + (f" (skips {len(e['skipped'])} rejected)" if e.get("skipped") else ""),
            held,
            lead_text,
        )
    return table


def envs(url: Url = DEFAULT_URL, token: Token = None, output: Output = "table", project: str | None = None) -> None:
    """What runs where: per project and environment, digest, commit, since when, by whom."""
    with service(url, token) as client:
        render(client.get("/api/v1/environments", project=project), output, _matrix_table)


@promotions_app.command("ls")
def promotions_ls(
    url: Url = DEFAULT_URL,
    token: Token = None,
    output: Output = "table",
    project: str | None = None,
    environment: str | None = None,
    status: str | None = None,
    limit: int = 20,
) -> None:
    """Promotion history, newest first."""

    def table(page: dict[str, Any]) -> Table:
        rows = Table("id", "project", "environment", "digest", "status", "trigger", "actor", "created", box=None)
        for p in page["items"]:
            rows.add_row(
                str(p["id"]),
                p["project"],
                p["environment"],
                short_digest(p["digest"]),
                p["status"],
                p["trigger"],
                p["actor"],
                when(p["created_at"]),
            )
        return rows

    with service(url, token) as client:
        render(
            client.get("/api/v1/promotions", project=project, environment=environment, status=status, limit=limit),
            output,
            table,
        )


@promotions_app.command("show")
def promotions_show(promotion_id: int, url: Url = DEFAULT_URL, token: Token = None, output: Output = "table") -> None:
    """One promotion with its steps."""
    with service(url, token) as client:
        render(client.get(f"/api/v1/promotions/{promotion_id}"), output, _promotion_fields)


@images_app.command("show")
def images_show(digest: str, url: Url = DEFAULT_URL, token: Token = None, output: Output = "table") -> None:
    """Which build made a digest, where it has been, and where it runs now."""

    def table(image: dict[str, Any]) -> Table:
        rows = [
            ("digest", image["digest"]),
            ("runs in", ", ".join(image["running_in"])),
            ("rejected", image["rejected"]["reason"] if image["rejected"] else None),
        ]
        rows += [
            (f"build {b['id']}", f"{b['project']} {b['ref']} {cut(b['commit'], 12)} {b['status']}")
            for b in image["builds"]
        ]
        rows += [
            (f"promotion {p['id']}", f"{p['environment']} {p['status']} by {p['actor']} {when(p['finished_at'])}")
            for p in image["promotions"]
        ]
        return field_table(rows)

    with service(url, token) as client:
        render(client.get(f"/api/v1/images/{digest}"), output, table)


@images_app.command("reject")
def images_reject(
    digest: str,
    reason: Annotated[str, typer.Option(help="Why (shown to whoever tries).")],
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Block a digest from every further promotion."""
    with service(url, token) as client:
        client.post(f"/api/v1/images/{digest}/reject", {"reason": reason})
    console.print(f"{digest} rejected: {reason}", markup=False)


def register(app: typer.Typer) -> None:
    """The ops commands on the main ``pipeline`` command."""
    app.add_typer(builds_app, name="builds")
    app.add_typer(promotions_app, name="promotions")
    app.add_typer(images_app, name="images")
    for command in (promote, rollback, release, envs):
        app.command()(command)
