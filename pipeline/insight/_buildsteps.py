"""The Dockerfile steps of a build, read back from its stored log: which were cached, how long
each took, which failed.

BuildKit's plain progress (what every builder here prints) names each step once
(``#7 [release 2/4] COPY app.txt /app.txt``) and ends it with ``#7 CACHED``, ``#7 DONE 1.2s`` or
``#7 ERROR: …``. Only the builder saw those lines go by; the build page reads them again from
the log rows, so no column is needed and builds made before this module have steps too. A log
with several attempts (``— attempt 2 of 3 …`` markers) is read from the last attempt on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["BuildStep", "build_steps"]

_NAMED = re.compile(r"^#(\d+) \[(?!internal\])([^\]]*\d+/\d+)\] (.*)$")
_DONE = re.compile(r"^#(\d+) DONE (\d+(?:\.\d+)?)s$")
_CACHED = re.compile(r"^#(\d+) CACHED$")
_ERROR = re.compile(r"^#(\d+) ERROR: ?(.*)$")
_ATTEMPT = "— attempt "


@dataclass
class BuildStep:
    """One Dockerfile instruction as BuildKit ran it."""

    vertex: str
    position: str  # ``2/4`` or ``release 2/4``
    instruction: str
    cached: bool = False
    seconds: float | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed"
        if self.cached:
            return "cached"
        return "done" if self.seconds is not None else "running"


def build_steps(lines: Iterable[str]) -> list[BuildStep]:
    """The steps in the order BuildKit first named them, of the last attempt in ``lines``."""
    steps: dict[str, BuildStep] = {}
    for line in lines:
        if line.startswith(_ATTEMPT):
            steps = {}
        elif match := _NAMED.match(line):
            steps.setdefault(match[1], BuildStep(match[1], match[2], match[3]))
        elif (match := _CACHED.match(line)) and match[1] in steps:
            steps[match[1]].cached = True
        elif (match := _DONE.match(line)) and match[1] in steps:
            steps[match[1]].seconds = float(match[2])
        elif (match := _ERROR.match(line)) and match[1] in steps:
            steps[match[1]].error = match[2]
    return list(steps.values())
