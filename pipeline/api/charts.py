"""The page's pictures, drawn on the server as SVG: lead time per environment and build
duration over time.

Pure geometry: each function turns rows into the coordinates and labels a template draws
(``_charts.html``), in a fixed viewBox that the browser scales to the page's width. Nothing is
loaded from elsewhere and no script runs; every label is text the template escapes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.api.templating import span
from pipeline.promotion import EnvironmentState
from pipeline.store import Build

__all__ = ["BarChart", "ColumnChart", "build_durations", "lead_times"]

WIDTH = 720
_LABEL = 170  # room for "project/environment" left of the bars
_ROW = 24


@dataclass(frozen=True)
class Bar:
    label: str
    y: int
    width: float  # the median
    p90_x: float
    text: str


@dataclass(frozen=True)
class BarChart:
    """Horizontal bars: one row per environment."""

    width: int
    height: int
    left: int
    bars: list[Bar]
    scale: str  # what the full width stands for


def lead_times(states: Sequence[EnvironmentState]) -> BarChart | None:
    """Median push-to-arrival per environment as a bar, its p90 as a tick; None without data."""
    rows = [s for s in states if s.lead_time is not None]
    if not rows:
        return None
    top = max(s.lead_time.p90_seconds for s in rows if s.lead_time) or 1.0
    room = WIDTH - _LABEL - 10
    bars = []
    for i, s in enumerate(rows):
        lead = s.lead_time
        assert lead is not None
        bars.append(
            Bar(
                f"{s.project}/{s.environment}",
                i * _ROW + 4,
                round(room * lead.median_seconds / top, 1),
                round(_LABEL + room * lead.p90_seconds / top, 1),
                f"median {span(lead.median_seconds)}, p90 {span(lead.p90_seconds)} ({lead.samples} arrivals)",
            )
        )
    return BarChart(WIDTH, len(rows) * _ROW + 8, _LABEL, bars, span(top))


@dataclass(frozen=True)
class Column:
    build_id: int
    x: float
    y: float
    width: float
    height: float
    status: str
    text: str


@dataclass(frozen=True)
class ColumnChart:
    """Vertical columns, oldest build on the left, height = seconds from start to finish."""

    width: int
    height: int
    base: int  # the y of the time axis
    columns: list[Column]
    top: str  # what the full height stands for
    first: dt.datetime
    last: dt.datetime


_HEIGHT, _BASE = 170, 150


def build_durations(rows: Sequence[Build]) -> ColumnChart | None:
    """One column per finished build (the last attempt's start to its end); None without any."""
    done = sorted(
        (b for b in rows if b.started_at and b.finished_at and b.finished_at >= b.started_at),
        key=lambda b: (b.finished_at, b.id),
    )
    if not done:
        return None
    seconds = [(b, (b.finished_at - b.started_at).total_seconds()) for b in done]  # type: ignore[operator]
    top = max(s for _, s in seconds) or 1.0
    step = (WIDTH - 20) / len(seconds)
    columns = [
        Column(
            b.id,
            round(10 + i * step + step * 0.15, 1),
            round(_BASE - (_BASE - 10) * s / top, 1),
            round(max(step * 0.7, 1.0), 1),
            round(max((_BASE - 10) * s / top, 1.0), 1),
            b.status,
            f"build {b.id} ({b.project}, {b.status}): {span(s)}",
        )
        for i, (b, s) in enumerate(seconds)
    ]
    assert done[0].finished_at is not None and done[-1].finished_at is not None
    return ColumnChart(WIDTH, _HEIGHT, _BASE, columns, span(top), done[0].finished_at, done[-1].finished_at)
