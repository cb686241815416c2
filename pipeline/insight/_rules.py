"""The pipeline's own Dockerfile rules: mistakes that cost cache hits, pull time or safety.

hadolint checks each instruction on its own; these rules look at the order of instructions
and at what the built image turned out to contain:

- PL001 ``apt-get update`` alone in a RUN: that layer stays cached, so a later install reads
  stale package lists (and fails once the mirror drops the old versions).
- PL002 the final stage runs as root: its last USER is root (warning), or it has no USER at
  all (info: the base image's user applies, root unless it sets one).
- PL003 the whole build context is copied before the dependency install, so every source change
  invalidates the cached install layer.
- PL004 files that a later layer deletes or overwrites (from the image insight).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pipeline.insight._dockerfile import Instruction
from pipeline.insight._model import Advice, ImageInsight

__all__ = ["pipeline_rules"]

_APT = r"\bapt(?:-get)?\s+(?:-\S+\s+)*"
_APT_UPDATE = re.compile(_APT + r"update\b")
_APT_USES_LISTS = re.compile(_APT + r"(?:install|upgrade|dist-upgrade|full-upgrade|build-dep)\b")
_DEPENDENCY_INSTALL = re.compile(
    r"\bpip3?\s+install\b[^\n;&|]*\s(?:-r|--requirement)[\s=]"
    r"|\b(?:uv\s+pip\s+install\b[^\n;&|]*\s-r\s|uv\s+sync\b|poetry\s+install\b|pdm\s+install\b)"
    r"|\bpipenv\s+(?:install|sync)\b"
    r"|\bnpm\s+(?:ci|install|i)\b|\byarn(?:\s+install)?\s*(?:$|&&|;|\|)|\bpnpm\s+(?:install|i)\b"
    r"|\bbun\s+install\b|\bgo\s+mod\s+download\b|\bbundle\s+install\b|\bcomposer\s+install\b"
    r"|\bcargo\s+fetch\b",
    re.MULTILINE,
)
_WHOLE_CONTEXT = frozenset({".", "./", "*", "./*"})
_ROOT_USERS = frozenset({"root", "0"})
_TOP_FILES = 5
_WASTE_WARNING_RATIO = 0.1  # dive's default highestUserWastedPercent


def _pipeline(code: str, level: str, line: int | None, message: str) -> Advice:
    return Advice("pipeline", code, level, line, message)


def _stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Instructions grouped by build stage (what precedes the first FROM is its own group)."""
    stages: list[list[Instruction]] = [[]]
    for instruction in instructions:
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return [stage for stage in stages if stage]


def _apt_update_alone(instructions: list[Instruction]) -> Iterator[Advice]:
    for ins in instructions:
        if ins.keyword == "RUN" and _APT_UPDATE.search(ins.command) and not _APT_USES_LISTS.search(ins.command):
            yield _pipeline(
                "PL001",
                "warning",
                ins.line,
                "`apt-get update` runs in a RUN of its own: that layer stays cached, so a later "
                "`apt-get install` reads stale package lists and breaks once the mirror drops "
                "them. Update and install in one RUN: `RUN apt-get update && apt-get install "
                "-y --no-install-recommends PKG && rm -rf /var/lib/apt/lists/*`.",
            )


def _runs_as_root(instructions: list[Instruction]) -> Iterator[Advice]:
    if not any(ins.keyword == "FROM" for ins in instructions):
        return  # not a Dockerfile hadolint would accept either
    final = _stages(instructions)[-1]
    users = [ins for ins in final if ins.keyword == "USER"]
    if not users:
        yield _pipeline(
            "PL002",
            "info",
            None,
            "The final stage sets no USER, so the container runs as the base image's user "
            "(root unless the base sets one). Add `USER <non-root uid>` after the steps that "
            "need root.",
        )
        return
    last = users[-1]
    name = (last.operands[0] if last.operands else "").split(":")[0]
    if name in _ROOT_USERS:
        yield _pipeline(
            "PL002",
            "warning",
            last.line,
            f"The last USER of the final stage is {name}, so the container runs as root. "
            "Switch to a non-root user after the steps that need root.",
        )


def _copies_whole_context(ins: Instruction) -> bool:
    if ins.keyword not in ("COPY", "ADD") or "--from" in ins.flags:
        return False
    sources = ins.operands[:-1]
    return any(source in _WHOLE_CONTEXT for source in sources)


def _source_before_dependencies(instructions: list[Instruction]) -> Iterator[Advice]:
    for stage in _stages(instructions):
        copy = next((ins for ins in stage if _copies_whole_context(ins)), None)
        if copy is None:
            continue
        later = stage[stage.index(copy) + 1 :]
        install = next((ins for ins in later if ins.keyword == "RUN" and _DEPENDENCY_INSTALL.search(ins.command)), None)
        if install is not None:
            yield _pipeline(
                "PL003",
                "warning",
                copy.line,
                f"`{copy.keyword} {copy.args}` copies the whole build context before the "
                f"dependency install on line {install.line}, so every source change re-runs "
                "the install. Copy only the dependency files first (requirements.txt, "
                "package.json + lock file, go.mod + go.sum ...), install, then copy the rest.",
            )


def _human(size: int) -> str:
    """Bytes the way dive prints them (SI units)."""
    value, unit = float(size), "B"
    for bigger in ("kB", "MB", "GB", "TB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def _wasted_files(insight: ImageInsight | None) -> Iterator[Advice]:
    if insight is None or insight.wasted_bytes <= 0:
        return
    top = [f for f in insight.wasted_files if f.wasted_bytes > 0][:_TOP_FILES]
    listed = ", ".join(f"{f.path} ({_human(f.wasted_bytes)} in {f.count} layers)" for f in top)
    heavy = insight.user_wasted_percent >= _WASTE_WARNING_RATIO or insight.efficiency < 0.9
    yield _pipeline(
        "PL004",
        "warning" if heavy else "info",
        None,
        f"{_human(insight.wasted_bytes)} are wasted on files that a later layer deletes or "
        f"overwrites (every copy is still pulled): {listed}. Remove temporary files in the "
        "same RUN that creates them, or copy only the results out of a build stage.",
    )


def pipeline_rules(instructions: list[Instruction], insight: ImageInsight | None = None) -> list[Advice]:
    """Every finding of the pipeline's own rules, in rule order."""
    return [
        *_apt_update_alone(instructions),
        *_runs_as_root(instructions),
        *_source_before_dependencies(instructions),
        *_wasted_files(insight),
    ]
