"""``/api/v1/builds``: the build history, each build's logs, and builds asked for by hand."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from pipeline.api.deps import Allowed, ConfigDep, DatabaseDep, SessionDep
from pipeline.api.pagination import decode_cursor, split_page
from pipeline.api.params import MAX_ID, Id, Moment
from pipeline.api.problems import problem_responses
from pipeline.api.schemas import BuildOut, BuildPage, BuildRequest, LogLine, LogPage
from pipeline.build_requests import request_build
from pipeline.store import Database, builds

router = APIRouter(prefix="/api/v1/builds", tags=["builds"], dependencies=[Depends(Allowed("viewer"))],
                   responses=problem_responses(400, 401, 403, 404, 409, 422))
BUILDER = [Depends(Allowed("builder"))]

BuildStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "superseded", "skipped"]


@router.get("", response_model=BuildPage, summary="List builds, newest first")
def list_builds(
    session: SessionDep,
    project: str | None = None,
    branch: str | None = None,
    status: BuildStatus | None = None,
    commit: Annotated[str | None, Query(pattern="^[0-9a-fA-F]{4,40}$")] = None,
    digest: Annotated[str | None, Query(pattern="^sha256:[0-9a-f]{64}$")] = None,
    since: Moment = None,
    until: Moment = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> BuildPage:
    where = builds.BuildFilter(project, branch, status, commit, digest, since, until)
    before = decode_cursor(cursor) if cursor else None
    rows = builds.list_builds(session, where, limit=limit + 1, before_id=before)
    page, next_cursor = split_page(rows, limit)
    return BuildPage(items=[BuildOut.model_validate(row) for row in page], next_cursor=next_cursor)


@router.get("/{build_id}", response_model=BuildOut, summary="One build, with its digest once pushed")
def get_build(build_id: Id, session: SessionDep) -> BuildOut:
    return BuildOut.model_validate(builds.get_build(session, build_id))


def _page(db: Database, build_id: int, after: int) -> LogPage:
    with db.session() as session:
        lines = builds.read_logs(session, build_id, after_seq=after)
        status = builds.get_build(session, build_id).status
    next_seq = lines[-1].seq if lines else after
    return LogPage(build_id=build_id, status=status, lines=[LogLine.model_validate(x) for x in lines],
                   next_seq=next_seq)


async def _follow(db: Database, build_id: int, after: int) -> AsyncIterator[bytes]:
    """Newline-delimited JSON lines as they are written, until the build has ended."""
    while True:
        page = await run_in_threadpool(_page, db, build_id, after)
        for line in page.lines:
            yield (line.model_dump_json() + "\n").encode()
        after = page.next_seq
        if page.status in builds.TERMINAL and not page.lines:
            yield (json.dumps({"status": page.status, "end": True}) + "\n").encode()
            return
        if not page.lines:
            await asyncio.sleep(0.5)


@router.get("/{build_id}/logs", response_model=LogPage, summary="Build output after line `after`",
            responses={200: {"content": {"application/x-ndjson": {}},
                             "description": "with follow=true: one JSON line per log line until the build ends"}})
async def get_logs(build_id: Id, db: DatabaseDep, after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
                   follow: bool = False) -> LogPage | StreamingResponse:
    page = await run_in_threadpool(_page, db, build_id, after)  # 404 before any streaming starts
    if not follow:
        return page
    return StreamingResponse(_follow(db, build_id, after), media_type="application/x-ndjson")


@router.post("", response_model=BuildOut, status_code=202, summary="Queue a build of a ref or commit",
             dependencies=BUILDER)
def create_build(body: BuildRequest, db: DatabaseDep, config: ConfigDep) -> BuildOut:
    build = request_build(db, config, body.project, ref=body.ref, commit=body.commit)
    return BuildOut.model_validate(build)


@router.post("/{build_id}/cancel", response_model=BuildOut, summary="Cancel a queued or running build",
             dependencies=BUILDER)
def cancel_build(build_id: Id, session: SessionDep) -> BuildOut:
    return BuildOut.model_validate(builds.cancel_build(session, build_id))
