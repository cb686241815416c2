"""Test data and a served app that the promotion, CLI and web-page tests share.

Promotion tests start after the build: the build rows are written straight into the database
for images that skopeo pushed into a real registry; the promotions are worked by real workers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from pipeline.config import Config
from pipeline.store import Database, builds, projects
from tests.services import free_port
from workers.promotion_worker import PromotionWorker

__all__ = ["serve_with_promoter", "succeeded_builds"]


def succeeded_builds(
    db: Database,
    config: Config,
    project: str,
    digests: Sequence[str],
    *,
    first: int = 1,
    logs: Callable[[int], list[str]] | None = None,
) -> list[int]:
    """One succeeded build of ``main`` per digest (commit ``f"{n + first:x}" * 40``, the log lines
    ``logs(n)``); their ids."""
    ids = []
    with db.session() as session:
        projects.sync_projects(session, config.projects)
        for n, digest in enumerate(digests):
            build_id = builds.queue_build(
                session,
                project=project,
                commit=f"{n + first:x}" * 40,
                ref="refs/heads/main",
                branch="main",
                trigger="test",
            )
            builds.record_progress(session, build_id, status="succeeded", digest=digest)
            if logs is not None:
                builds.append_logs(session, build_id, logs(n))
            ids.append(build_id)
    return ids


@contextmanager
def serve_with_promoter(app: FastAPI, db: Database, config: Config, name: str) -> Iterator[str]:
    """``app`` on a real port (uvicorn in a thread) with a promotion worker beside it; its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    worker = PromotionWorker(db, config, name=name)
    threads = [threading.Thread(target=server.run), threading.Thread(target=worker.run_forever)]
    for thread in threads:
        thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        worker.stop()
        for thread in threads:
            thread.join(timeout=30)
