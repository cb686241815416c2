"""A small Dockerfile reader: enough structure for the pipeline's own advice rules.

The ``dockerfile`` package (BuildKit's Go parser) is not a dependency of this service, so this
module reads what the rules need and no more:

- the ``# escape=`` parser directive (backslash or backtick);
- line continuations, with comment and blank lines inside a continuation skipped as BuildKit
  skips them; comment lines elsewhere (a ``#`` later in a line is left to the shell);
- heredocs (``RUN <<EOF`` ... ``EOF``, ``<<-`` and quoted terminators, several per line),
  whose bodies belong to the instruction and are never read as instructions;
- JSON (exec) form, and ``--flag`` options before the arguments (``RUN --mount=...``).

Not handled: variable expansion (``USER $APP_USER`` is left as written), ``ONBUILD`` triggers
(read as the ONBUILD instruction itself), and other parser directives (``# syntax=`` is
ignored). A malformed file never raises: hadolint reports syntax errors (DL1000).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

__all__ = ["Instruction", "parse_dockerfile"]

_DIRECTIVE = re.compile(r"^#\s*([A-Za-z]+)\s*=\s*(.*?)\s*$")
_HEREDOC = re.compile(r"(?<![<\w])<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_FLAG = re.compile(r"^(?:--[A-Za-z-]+(?:=\S*)?\s+)+")
_HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})


@dataclass(frozen=True)
class Instruction:
    """One instruction: keyword upper-cased, 1-based start line, arguments as written."""

    keyword: str
    line: int
    args: str
    heredocs: tuple[str, ...] = ()

    @property
    def flags(self) -> str:
        """The ``--name=value`` options before the arguments."""
        match = _FLAG.match(self.args + " ")
        return match.group(0).strip() if match else ""

    @property
    def operands(self) -> list[str]:
        """The arguments after the flags, as a list (JSON form decoded, else split on blanks)."""
        rest = self.args[len(self.flags) :].strip()
        if rest.startswith("["):
            try:
                decoded = json.loads(rest)
            except ValueError:
                decoded = None
            if isinstance(decoded, list) and all(isinstance(x, str) for x in decoded):
                return decoded
        return rest.split()

    @property
    def command(self) -> str:
        """For RUN: the shell text, heredoc bodies included."""
        return "\n".join([" ".join(self.operands), *self.heredocs])


def _escape_char(lines: list[str]) -> str:
    """The ``# escape=`` directive's character; directives only count at the very top."""
    for line in lines:
        match = _DIRECTIVE.match(line.strip())
        if not match:
            break
        if match.group(1).lower() == "escape" and match.group(2) in ("`", "\\"):
            return match.group(2)
    return "\\"


def _is_skippable(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _read_heredocs(args: str, lines: list[str], pos: int) -> tuple[tuple[str, ...], int]:
    """Bodies of the heredocs ``args`` opens, read from ``lines[pos:]``; returns the new pos."""
    bodies = []
    for match in _HEREDOC.finditer(args):
        strip_tabs, terminator = match.group(1) == "-", match.group(3)
        body: list[str] = []
        while pos < len(lines):
            text = lines[pos].lstrip("\t") if strip_tabs else lines[pos]
            pos += 1
            if text.rstrip("\r") == terminator:
                break
            body.append(text)
        bodies.append("\n".join(body))
    return tuple(bodies), pos


def parse_dockerfile(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile, in order."""
    lines = text.splitlines()
    escape = _escape_char(lines)
    instructions: list[Instruction] = []
    pos = 0
    while pos < len(lines):
        if _is_skippable(lines[pos]):
            pos += 1
            continue
        start, parts = pos + 1, []
        current = lines[pos].rstrip()
        pos += 1
        while current.endswith(escape):
            parts.append(current[:-1])
            while pos < len(lines) and _is_skippable(lines[pos]):
                pos += 1  # comment and blank lines inside a continuation
            if pos >= len(lines):
                current = ""
                break
            current = lines[pos].rstrip()
            pos += 1
        parts.append(current)
        keyword, _, args = " ".join(p.strip() for p in parts).strip().partition(" ")
        heredocs: tuple[str, ...] = ()
        if keyword.upper() in _HEREDOC_KEYWORDS:
            heredocs, pos = _read_heredocs(args, lines, pos)
        instructions.append(Instruction(keyword.upper(), start, args.strip(), heredocs))
    return instructions
