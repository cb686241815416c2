"""Dockerfile advice for one build: hadolint's findings plus the pipeline's own rules."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import BuildError
from pipeline.insight._dockerfile import parse_dockerfile
from pipeline.insight._hadolint import hadolint_advice
from pipeline.insight._model import Advice, ImageInsight
from pipeline.insight._rules import pipeline_rules

__all__ = ["advise"]

# Our rule that says the same thing as a hadolint rule, on the same line, is left out.
_SAME_AS_HADOLINT = {"PL002": "DL3002"}


def _order(advice: Advice) -> tuple[bool, int, bool, str]:
    """By line (file-wide advice last), hadolint before ours on a line, then by code."""
    return advice.line is None, advice.line or 0, advice.source != "hadolint", advice.code


def _without_duplicates(ours: list[Advice], theirs: list[Advice]) -> list[Advice]:
    reported = {(a.code, a.line) for a in theirs}
    return [a for a in ours if (_SAME_AS_HADOLINT.get(a.code), a.line) not in reported]


def advise(dockerfile: Path, insight: ImageInsight | None = None, *, hadolint: str = "hadolint") -> list[Advice]:
    """Advice on ``dockerfile``; with ``insight``, also on files wasted in the built image.

    ``hadolint`` names the binary (a name looked up next to Python and on PATH, or a path).
    Only an unreadable Dockerfile raises (BuildError); a missing or failing hadolint is
    reported as an info Advice."""
    try:
        text = dockerfile.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise BuildError(f"cannot read Dockerfile {dockerfile} for advice: {exc.strerror or exc}") from None
    theirs = hadolint_advice(dockerfile, hadolint)
    ours = _without_duplicates(pipeline_rules(parse_dockerfile(text), insight), theirs)
    return sorted([*theirs, *ours], key=_order)
