"""The ops web page at ``/``: the environment matrix, recent builds with their live logs, the
promotion timeline of a project, and promote / rollback / release through the REST API.

Server-rendered from Jinja2 templates (``pipeline/api/ui/templates/``, autoescaped: every value
from the database or the config is escaped). The page's JavaScript (``ui/static/ui.js``)
refreshes the tables by fetching the same fragments (``/ui/fragments/...``) and calls
``/api/v1/...`` for every action, sending the pasted token as ``Authorization: Bearer`` and the
name as ``X-Pipeline-Actor``. Nothing is loaded from anywhere but this service.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from pipeline import promotion
from pipeline.access import Principal
from pipeline.api import charts
from pipeline.api.deps import Allowed, ConfigDep, PrincipalDep, SessionDep
from pipeline.api.templating import render
from pipeline.config import Config
from pipeline.errors import NotFound
from pipeline.store import Build, Promotion, builds, promotions

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_STATIC = {
    "ui.css": "text/css; charset=utf-8",
    "ui.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
BUILDS_SHOWN = 25
BUILDS_CHARTED = 60
PROMOTIONS_SHOWN = 50
VIEWER = [Depends(Allowed("viewer"))]


@functools.cache
def _asset(name: str) -> str:
    return resources.files("pipeline.api").joinpath("ui", "static", name).read_text(encoding="utf-8")


def _builds(session: Session) -> list[Build]:
    return builds.list_builds(session, builds.BuildFilter(), limit=BUILDS_SHOWN)


def _trends(session: Session, states: list[promotion.EnvironmentState]) -> dict[str, object]:
    """The charts: lead time per environment (from the matrix) and recent build durations."""
    recent = builds.list_builds(session, builds.BuildFilter(), limit=BUILDS_CHARTED)
    return {"lead_chart": charts.lead_times(states), "duration_chart_data": charts.build_durations(recent)}


def _timeline(session: Session, project: str) -> list[Promotion]:
    return promotions.list_promotions(session, promotions.PromotionFilter(project=project), limit=PROMOTIONS_SHOWN)


def _project(config: Config, project: str | None) -> str:
    if project is None:
        return next(iter(config.projects), "")
    if project not in config.projects:
        raise NotFound(f"no project named {project!r}")
    return project


def _reader(principal: PrincipalDep, config: ConfigDep) -> Principal | None:
    """Who may see data on the first render: a browser's navigation carries no token, so the
    page comes as a shell whose tables the script fills in once a token is pasted (unless
    reads are open to anyone)."""
    if principal is not None:
        return principal
    return Principal("anonymous", "viewer") if config.api.anonymous_read else None


ReaderDep = Annotated[Principal | None, Depends(_reader)]


@router.get("/", response_class=HTMLResponse)
def index(
    request: Request, session: SessionDep, config: ConfigDep, reader: ReaderDep, project: str | None = None
) -> HTMLResponse:
    chosen = _project(config, project)
    shown = reader is not None
    states = promotion.environment_matrix(session, config) if shown else []
    return render(
        request,
        "index.html",
        shown=shown,
        project=chosen,
        projects=list(config.projects),
        environments=[(name, env.name) for name, p in config.projects.items() for env in p.environments],
        states=states,
        builds=_builds(session) if shown else [],
        promotions=_timeline(session, chosen) if shown and chosen else [],
        **(_trends(session, states) if shown else {}),
    )


@router.get("/ui/fragments/matrix", response_class=HTMLResponse, dependencies=VIEWER)
def matrix_fragment(request: Request, session: SessionDep, config: ConfigDep) -> HTMLResponse:
    return render(request, "_matrix.html", states=promotion.environment_matrix(session, config))


@router.get("/ui/fragments/trends", response_class=HTMLResponse, dependencies=VIEWER)
def trends_fragment(request: Request, session: SessionDep, config: ConfigDep) -> HTMLResponse:
    return render(request, "_trends.html", **_trends(session, promotion.environment_matrix(session, config)))


@router.get("/ui/fragments/builds", response_class=HTMLResponse, dependencies=VIEWER)
def builds_fragment(request: Request, session: SessionDep) -> HTMLResponse:
    return render(request, "_builds.html", builds=_builds(session))


@router.get("/ui/fragments/timeline", response_class=HTMLResponse, dependencies=VIEWER)
def timeline_fragment(
    request: Request, session: SessionDep, config: ConfigDep, project: Annotated[str, Query(max_length=63)]
) -> HTMLResponse:
    chosen = _project(config, project)
    return render(request, "_timeline.html", project=chosen, promotions=_timeline(session, chosen))


@router.get("/ui/static/{name}")
def static(name: str) -> Response:
    if name not in _STATIC:
        raise NotFound(f"no static file {name!r}")
    return Response(_asset(name), media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})
