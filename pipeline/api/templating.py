"""The web page's Jinja2 environment (FastAPI's ``Jinja2Templates``) and the filters its
templates share.

Templates live in ``pipeline/api/ui/templates/`` and are loaded from the installed package, so a
wheel serves the same page as a checkout. Autoescape is on for every template and undefined
names are errors: a value that comes from the database, the config or a request is always
escaped, and a misspelt name fails the render (and the tests) instead of printing nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

__all__ = ["age", "render", "short_digest", "signed", "size", "span", "templates"]


def short_digest(digest: str | None) -> str:
    """``sha256:`` and the first 12 hex digits: enough to tell digests apart on a page."""
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


def span(seconds: float | None) -> str:
    """A duration for people: ``42 s``, ``3.5 min``, ``1.2 h``."""
    if seconds is None:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def size(count: float | None) -> str:
    """Bytes for people: ``812 B``, ``4.2 kB``, ``118.3 MB`` (powers of 1000, as registries show)."""
    if count is None:
        return ""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover


def signed(value: float | None, unit: str = "") -> str:
    """A change with its sign: ``+1.2 MB``, ``-3``, ``±0``."""
    if value is None:
        return "—"
    if value == 0:
        return "±0"
    text = size(abs(value)) if unit == "bytes" else f"{abs(value):.4g}"
    return ("+" if value > 0 else "-") + text


def iso(when: dt.datetime | None) -> str:
    """UTC, to the second: the machine-readable time in ``<time datetime=…>`` and tooltips."""
    if when is None:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat(timespec="seconds")


def _blank_none(value: object) -> object:
    """``None`` prints as nothing (an unset reason, a build without a branch), never as "None"."""
    return "" if value is None else value


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.api", "ui/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_blank_none,
    )
    env.filters.update(short_digest=short_digest, age=age, span=span, iso=iso, size=size, signed=signed)
    return env


def _page_context(request: Request) -> dict[str, Any]:
    """What the layout needs on every page: with tokens on, the token names who acts."""
    config = getattr(request.app.state, "config", None)
    return {"tokens_on": bool(config is None or config.api.auth)}


templates = Jinja2Templates(env=_environment(), context_processors=[_page_context])


def render(request: Request, name: str, **context: Any) -> HTMLResponse:
    """A template as a response that no cache keeps (the page shows live state)."""
    response = templates.TemplateResponse(request, name, context, headers={"Cache-Control": "no-store"})
    return response
