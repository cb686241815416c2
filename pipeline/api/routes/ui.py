"""The ops web page at ``/``: the environment matrix, recent builds with their live logs, the
promotion timeline of a project, and promote / rollback / release through the REST API.

Server-rendered: every table is HTML made here, with each value from the database or the config
passed through :func:`html.escape`. The page's JavaScript (``ui/static/ui.js``) refreshes the
tables by fetching the same fragments (``/ui/fragments/...``) and calls ``/api/v1/...`` for every
action, sending the pasted token as ``Authorization: Bearer`` and the name as ``X-Pipeline-Actor``.
Nothing is loaded from anywhere but this service.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import string
from collections.abc import Iterable
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from pipeline import promotion
from pipeline.access import Principal
from pipeline.api.deps import Allowed, ConfigDep, PrincipalDep, SessionDep
from pipeline.config import Config
from pipeline.errors import NotFound
from pipeline.promotion import EnvironmentState
from pipeline.store import Build, Promotion, builds, promotions

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_STATIC = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}
BUILDS_SHOWN = 25
PROMOTIONS_SHOWN = 50


@functools.cache
def _asset(*parts: str) -> str:
    return resources.files("pipeline.api").joinpath("ui", *parts).read_text(encoding="utf-8")


def esc(value: object) -> str:
    """Text for HTML content and quoted attribute values; None is empty."""
    return "" if value is None else html.escape(str(value), quote=True)


def short_digest(digest: str | None) -> str:
    if not digest:
        return ""
    algorithm, _, hex_ = digest.partition(":")
    return f"{algorithm}:{hex_[:12]}" if hex_ else digest[:19]


def age(when: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """``3 min ago``, ``2 h ago``, ``5 d ago``."""
    if when is None:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    seconds = int(((now or dt.datetime.now(dt.UTC)) - when).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _time(when: dt.datetime | None) -> str:
    if when is None:
        return ""
    iso = when.astimezone(dt.UTC).isoformat(timespec="seconds")
    return f'<time datetime="{esc(iso)}" title="{esc(iso)}">{esc(age(when))}</time>'


def _digest(digest: str | None) -> str:
    if not digest:
        return '<span class="none">—</span>'
    return f'<code class="digest" title="{esc(digest)}">{esc(short_digest(digest))}</code>'


def _status(status: str) -> str:
    return f'<span class="status status-{esc(status)}">{esc(status)}</span>'


def _table(caption: str, headers: list[str], rows: list[str], empty: str, table_id: str) -> str:
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    body = "".join(rows) or f'<tr class="empty"><td colspan="{len(headers)}">{esc(empty)}</td></tr>'
    return (
        f'<table id="{esc(table_id)}"><caption>{esc(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def matrix_html(states: list[EnvironmentState]) -> str:
    rows = []
    for s in states:
        current, build, previous, hold = s.current, s.build, s.previous, s.hold
        where = f"{s.project}/{s.environment}"
        held = ""
        if hold is not None:
            held = (
                f'<span class="badge held" title="held by {esc(hold.actor)} {esc(age(hold.created_at))}">held</span>'
                f' <span class="hold-reason">{esc(hold.reason)}</span>'
            )
        can_roll_back = "" if previous else ' disabled title="nothing ran before to roll back to"'
        actions = [
            (
                f'<button type="button" class="rollback" data-action="rollback" data-project="{esc(s.project)}" '
                f'data-environment="{esc(s.environment)}"{can_roll_back} '
                f'aria-label="Roll back {esc(where)}">Rollback</button>'
            )
        ]
        if hold is not None:
            actions.append(
                f'<button type="button" class="release" data-action="release" data-project="{esc(s.project)}" '
                f'data-environment="{esc(s.environment)}" aria-label="Release {esc(where)}">Release</button>'
            )
        waiting = f' <span class="badge waiting">{s.waiting} waiting</span>' if s.waiting else ""
        commit = f'<code title="{esc(build.commit)}">{esc(build.commit[:12])}</code>' if build else ""
        if build and build.branch:
            commit += f' <span class="branch">{esc(build.branch)}</span>'
        actor = f'{esc(current.actor)} <span class="trigger">({esc(current.trigger)})</span>' if current else ""
        rows.append(
            f'<tr data-project="{esc(s.project)}" data-environment="{esc(s.environment)}"'
            f' data-digest="{esc(current.digest if current else "")}">'
            f'<th scope="row">{esc(s.project)}</th>'
            f'<td class="env">{esc(s.environment)}{waiting}'
            f'<div class="where">{esc(s.registry)}/{esc(s.repository)}</div></td>'
            f'<td class="current">{_digest(current.digest if current else None)}</td>'
            f'<td class="commit">{commit}</td>'
            f'<td class="age">{_time(current.finished_at if current else None)}</td>'
            f'<td class="actor">{actor}</td>'
            f'<td class="previous">{_digest(previous.digest) if previous else ""}</td>'
            f'<td class="hold">{held}</td>'
            f'<td class="lead">{_lead(s)}</td>'
            f'<td class="actions">{"".join(actions)}</td></tr>'
        )
    return _table(
        "Environments: what runs where",
        [
            "Project",
            "Environment",
            "Digest",
            "Commit",
            "Since",
            "Promoted by",
            "Previous",
            "Hold",
            "Lead time",
            "Actions",
        ],
        rows,
        "No project has environments configured.",
        "matrix",
    )


def _lead(state: EnvironmentState) -> str:
    """Median push-to-arrival time, p90 in the tooltip."""
    lead = state.lead_time
    if lead is None:
        return ""
    title = f"p90 {_span(lead.p90_seconds)} over {lead.samples} arrivals in {lead.window_days} days"
    return f'<span title="{esc(title)}">{esc(_span(lead.median_seconds))}</span>'


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def builds_html(rows_: list[Build]) -> str:
    rows = []
    for b in rows_:
        rows.append(
            f'<tr data-build="{b.id}" class="build-row">'
            f'<th scope="row"><button type="button" class="link" data-action="logs" data-build="{b.id}" '
            f'aria-label="Show the log of build {b.id}">#{b.id}</button></th>'
            f"<td>{esc(b.project)}</td><td>{esc(b.branch or b.ref)}</td>"
            f'<td><code title="{esc(b.commit)}">{esc(b.commit[:12])}</code></td>'
            f"<td>{_status(b.status)}</td><td>{_digest(b.digest)}</td>"
            f'<td class="actor">{esc(b.actor or b.trigger)}</td>'
            f"<td>{_time(b.finished_at or b.started_at or b.created_at)}</td></tr>"
        )
    return _table(
        "Recent builds (click one for its log)",
        ["Build", "Project", "Branch", "Commit", "Status", "Digest", "By", "When"],
        rows,
        "No builds yet.",
        "builds",
    )


def timeline_html(project: str, rows_: list[Promotion]) -> str:
    rows = []
    for p in rows_:
        rows.append(
            f'<tr data-promotion="{p.id}" data-trigger="{esc(p.trigger)}" data-status="{esc(p.status)}">'
            f'<th scope="row">{p.id}</th><td>{esc(p.environment)}</td><td>{_digest(p.digest)}</td>'
            f"<td>{_status(p.status)}</td><td>{esc(p.trigger)}</td><td>{esc(p.actor)}</td>"
            f"<td>{_time(p.finished_at or p.created_at)}</td>"
            f'<td class="reason">{esc(p.reason)}</td><td class="error">{esc(p.error)}</td></tr>'
        )
    return _table(
        f"Promotions of {project}, newest first",
        ["#", "Environment", "Digest", "Status", "Trigger", "Actor", "When", "Reason", "Error"],
        rows,
        "No promotions yet.",
        "timeline",
    )


def _builds(session: Session) -> list[Build]:
    return builds.list_builds(session, builds.BuildFilter(), limit=BUILDS_SHOWN)


def _timeline(session: Session, project: str) -> list[Promotion]:
    return promotions.list_promotions(session, promotions.PromotionFilter(project=project), limit=PROMOTIONS_SHOWN)


def _project(config: Config, project: str | None) -> str:
    if project is None:
        return next(iter(config.projects), "")
    if project not in config.projects:
        raise NotFound(f"no project named {project!r}")
    return project


def _options(values: Iterable[str], selected: str = "") -> str:
    return "".join(f'<option value="{esc(v)}"{" selected" if v == selected else ""}>{esc(v)}</option>' for v in values)


VIEWER = [Depends(Allowed("viewer"))]
_LOCKED = '<p class="empty">Paste an API token above to see this (a viewer token is enough).</p>'


def _reader(principal: PrincipalDep, config: ConfigDep) -> Principal | None:
    """Who may see data on the first render: a browser's navigation carries no token, so the
    page comes as a shell whose tables the script fills in once a token is pasted (unless
    reads are open to anyone)."""
    if principal is not None:
        return principal
    return Principal("anonymous", "viewer") if config.api.anonymous_read else None


def _fragment(body: str) -> HTMLResponse:
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/", response_class=HTMLResponse)
def index(
    session: SessionDep,
    config: ConfigDep,
    reader: Annotated[Principal | None, Depends(_reader)],
    project: str | None = None,
) -> HTMLResponse:
    chosen = _project(config, project)
    shown = reader is not None
    environments = "".join(
        f'<option value="{esc(env.name)}" data-project="{esc(name)}"{"" if name == chosen else " hidden"}>'
        f"{esc(env.name)}</option>"
        for name, p in config.projects.items()
        for env in p.environments
    )
    page = string.Template(_asset("index.html")).substitute(
        matrix=matrix_html(promotion.environment_matrix(session, config)) if shown else _LOCKED,
        builds=builds_html(_builds(session)) if shown else _LOCKED,
        timeline=(timeline_html(chosen, _timeline(session, chosen)) if shown else _LOCKED) if chosen else "",
        projects=_options(config.projects, chosen),
        environments=environments,
        project=esc(chosen),
    )
    return _fragment(page)


@router.get("/ui/fragments/matrix", response_class=HTMLResponse, dependencies=VIEWER)
def matrix_fragment(session: SessionDep, config: ConfigDep) -> HTMLResponse:
    return _fragment(matrix_html(promotion.environment_matrix(session, config)))


@router.get("/ui/fragments/builds", response_class=HTMLResponse, dependencies=VIEWER)
def builds_fragment(session: SessionDep) -> HTMLResponse:
    return _fragment(builds_html(_builds(session)))


@router.get("/ui/fragments/timeline", response_class=HTMLResponse, dependencies=VIEWER)
def timeline_fragment(
    session: SessionDep, config: ConfigDep, project: Annotated[str, Query(max_length=63)]
) -> HTMLResponse:
    chosen = _project(config, project)
    return _fragment(timeline_html(chosen, _timeline(session, chosen)))


@router.get("/ui/static/{name}")
def static(name: str) -> Response:
    if name not in _STATIC:
        raise NotFound(f"no static file {name!r}")
    return Response(_asset("static", name), media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})
