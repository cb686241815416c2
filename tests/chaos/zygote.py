"""A fork server for ``pipeline worker`` processes: imports the service once, forks a worker per request.

Run as ``python -m tests.chaos.zygote``. Each line on stdin is a JSON object ``{"args": [...],
"log": PATH, "env": {...}}``; the server forks, the child becomes the leader of its own session
(so a kill of its process group takes its git and docker children too), sends its output to
``log`` and runs the real ``pipeline`` command line (``pipeline.cli.main``) with ``args``; the
server answers the child's pid on stdout.

Why: importing the service costs about 3 s of CPU here. The chaos tests kill a worker fifty
times and start a new one each time; fifty cold starts would take longer than the whole CI
budget on two cores. A forked child is still a real, separate ``pipeline worker`` process (own
pid, own database connections, own threads, its own lease and heartbeat); only the imports are
shared, and nothing else exists yet in the server when it forks (no threads, no connections).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys


def _preload() -> None:
    """Everything a worker imports on its way to its first claim."""
    import psycopg  # noqa: F401
    import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401

    import pipeline.cli  # noqa: F401
    import workers.build_worker
    import workers.promotion_worker
    import workers.scheduler  # noqa: F401


def _child(request: dict[str, object]) -> None:
    """In the forked child: a session of its own, the log as stdout/stderr, then the CLI."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the server ignores it; subprocess needs it
        log = os.open(str(request["log"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        env = request.get("env") or {}
        assert isinstance(env, dict)
        os.environ.update({str(k): str(v) for k, v in env.items()})
        random.seed()  # forked children must not share the server's random state
        import pipeline.cli

        args = request["args"]
        assert isinstance(args, list)
        sys.argv = ["pipeline", *map(str, args)]
        try:
            pipeline.cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # a child must never return into the server's loop
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    _preload()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    print("ready", flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(pid, flush=True)


if __name__ == "__main__":
    main()
