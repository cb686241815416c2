"""Run a Docker CLI command, streaming its lines, stoppable from another thread."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Finished", "run_streaming"]

LineSink = Callable[[str], None]


@dataclass(frozen=True)
class Finished:
    returncode: int
    tail: list[str]
    stopped: str | None = None  # "cancelled" or "timeout" when we ended it


def _redactor(secrets: Sequence[str]) -> Callable[[str], str]:
    values = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)

    def redact(line: str) -> str:
        for value in values:
            line = line.replace(value, "***")
        return line

    return redact


def _pump(stream, out: queue.Queue[str | None]) -> None:  # type: ignore[no-untyped-def]
    for raw in iter(stream.readline, b""):
        out.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
    out.put(None)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_streaming(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    on_line: LineSink,
    should_stop: Callable[[], bool] = lambda: False,
    timeout: float | None = None,
    secrets: Sequence[str] = (),
    tail_lines: int = 40,
) -> Finished:
    """Run ``cmd`` (an argument list, never a shell string) and pass each output line on.

    Secret values are replaced by ``***`` before a line leaves this function. The process gets
    its own session so that stopping it also stops the children the CLI started.
    """
    redact = _redactor(secrets)
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=full_env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    tail: deque[str] = deque(maxlen=tail_lines)
    deadline = time.monotonic() + timeout if timeout else None
    stopped: str | None = None
    while True:
        try:
            line = lines.get(timeout=0.25)
        except queue.Empty:
            line = ""
        else:
            if line is None:
                break
            line = redact(line)
            tail.append(line)
            on_line(line)
        if should_stop():
            stopped = "cancelled"
        elif deadline is not None and time.monotonic() > deadline:
            stopped = "timeout"
        if stopped:
            _kill(proc)
            break
    returncode = proc.wait()
    return Finished(returncode, list(tail), stopped)
