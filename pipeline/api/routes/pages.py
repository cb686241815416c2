"""The web page's detail views: a build, a promotion, an image (by digest), and who the pasted
token is.

Each view is a page (``/ui/builds/7``) and the fragment its script fetches (``/ui/fragments/
build/7``): a browser's navigation carries no token, so unless reads are open the page comes as
a shell that fills in once a token is pasted, as the main page does. Everything is read through
``pipeline.api.views``; the templates only lay it out.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse

from pipeline.access import Principal
from pipeline.api import views
from pipeline.api.deps import Allowed, ConfigDep, SessionDep
from pipeline.api.routes.ui import ReaderDep
from pipeline.api.templating import render, short_digest

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
VIEWER = [Depends(Allowed("viewer"))]
BuildId = Annotated[int, Path(ge=1, le=2**31 - 1)]
PromotionId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Digest = Annotated[str, Path(max_length=80)]


def _shell(request: Request, title: str, view: str, fragment: str, **context: object) -> HTMLResponse:
    return render(
        request,
        "detail.html",
        title=title,
        view=view,
        fragment=fragment,
        project="",
        **context,
    )


@router.get("/ui/builds/{build_id}", response_class=HTMLResponse)
def build_page(
    request: Request, session: SessionDep, config: ConfigDep, reader: ReaderDep, build_id: BuildId
) -> HTMLResponse:
    shown = views.build_view(session, build_id) if reader else None
    return _shell(request, f"build #{build_id}", "build", f"/ui/fragments/build/{build_id}", shown=shown)


@router.get("/ui/fragments/build/{build_id}", response_class=HTMLResponse, dependencies=VIEWER)
def build_fragment(request: Request, session: SessionDep, build_id: BuildId) -> HTMLResponse:
    return render(request, "_build.html", shown=views.build_view(session, build_id))


@router.get("/ui/promotions/{promotion_id}", response_class=HTMLResponse)
def promotion_page(
    request: Request, session: SessionDep, config: ConfigDep, reader: ReaderDep, promotion_id: PromotionId
) -> HTMLResponse:
    shown = views.promotion_view(session, promotion_id) if reader else None
    return _shell(
        request,
        f"promotion #{promotion_id}",
        "promotion",
        f"/ui/fragments/promotion/{promotion_id}",
        shown=shown,
    )


@router.get("/ui/fragments/promotion/{promotion_id}", response_class=HTMLResponse, dependencies=VIEWER)
def promotion_fragment(request: Request, session: SessionDep, promotion_id: PromotionId) -> HTMLResponse:
    return render(request, "_promotion.html", shown=views.promotion_view(session, promotion_id))


@router.get("/ui/images/{digest}", response_class=HTMLResponse)
def image_page(
    request: Request, session: SessionDep, config: ConfigDep, reader: ReaderDep, digest: Digest
) -> HTMLResponse:
    shown = views.image_view(session, config, digest) if reader else None
    return _shell(request, f"image {short_digest(digest)}", "image", f"/ui/fragments/image/{digest}", shown=shown)


@router.get("/ui/fragments/image/{digest}", response_class=HTMLResponse, dependencies=VIEWER)
def image_fragment(request: Request, session: SessionDep, config: ConfigDep, digest: Digest) -> HTMLResponse:
    return render(request, "_image.html", shown=views.image_view(session, config, digest))


@router.get("/ui/whoami")
def whoami(principal: Annotated[Principal, Depends(Allowed("viewer"))], config: ConfigDep) -> JSONResponse:
    """The pasted token's name and role: with tokens on, the page shows it as who acts (the
    service records the token's name whatever the page would send)."""
    return JSONResponse(
        {"name": principal.name, "role": principal.role, "tokens": config.api.auth},
        headers={"Cache-Control": "no-store"},
    )
