"""``/api/v1/builds``: the build history, each build's logs, and builds asked for by hand."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from pipeline.api import _examples as ex
from pipeline.api.deps import ActorDep, Allowed, ConfigDep, DatabaseDep, SessionDep
from pipeline.api.pagination import page
from pipeline.api.params import MAX_ID, Cursor, Id, PageSize, Since, Until
from pipeline.api.problems import problem_responses
from pipeline.api.schemas import BuildOut, BuildPage, BuildRequest, LogLine, LogPage
from pipeline.build import cancel, rebuild, request_build
from pipeline.store import Database, builds
from pipeline.types import DIGEST_PATTERN

router = APIRouter(
    prefix="/api/v1/builds",
    tags=["builds"],
    dependencies=[Depends(Allowed("viewer"))],
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
BUILDER = [Depends(Allowed("builder"))]

BuildStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "superseded", "skipped"]
BuildId = Annotated[Id, Path(description="the build's id", examples=[ex.BUILD_ID])]


@router.get(
    "",
    response_model=BuildPage,
    summary="List builds, newest first",
    description=(
        "The build history, newest first, filtered by any of project, branch, status, commit (a prefix "
        "of at least 4 hex digits), digest and creation time. Pages hold `limit` builds; pass the "
        "answer's `next_cursor` as `cursor` for the next one. Needs a viewer token."
    ),
)
def list_builds(
    session: SessionDep,
    project: Annotated[str | None, Query(description="only this project's builds", examples=[ex.PROJECT])] = None,
    branch: Annotated[str | None, Query(description="only builds of this branch", examples=["main"])] = None,
    status: Annotated[BuildStatus | None, Query(description="only builds in this status")] = None,
    commit: Annotated[
        str | None,
        Query(
            pattern="^[0-9a-fA-F]{4,40}$",
            description="only builds of commits starting with these hex digits (4 to 40)",
            examples=[ex.COMMIT],
        ),
    ] = None,
    digest: Annotated[
        str | None,
        Query(pattern=f"^{DIGEST_PATTERN}$", description="only builds that pushed this digest", examples=[ex.DIGEST]),
    ] = None,
    since: Since = None,
    until: Until = None,
    limit: PageSize = 50,
    cursor: Cursor = None,
) -> BuildPage:
    where = builds.BuildFilter(project, branch, status, commit, digest, since, until)
    rows, next_cursor = page(
        lambda n, before: builds.list_builds(session, where, limit=n, before=before),
        limit,
        cursor,
        by_time=since is not None or until is not None,
    )
    return BuildPage(items=[BuildOut.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/{build_id}",
    response_model=BuildOut,
    summary="One build, with its digest once pushed",
    description=(
        "The build's state: ref and commit, status, engine, attempts and error, and once pushed its "
        "image, digest, tags, layers, provenance and image insight. Needs a viewer token."
    ),
    responses=problem_responses(404, examples={404: {"detail": "no build with id 99"}}),
)
def get_build(build_id: BuildId, session: SessionDep) -> BuildOut:
    return BuildOut.model_validate(builds.get_build(session, build_id))


def _page(db: Database, build_id: int, after: int) -> LogPage:
    with db.session() as session:
        lines = builds.read_logs(session, build_id, after_seq=after)
        status = builds.get_build(session, build_id).status
    next_seq = lines[-1].seq if lines else after
    return LogPage(
        build_id=build_id, status=status, lines=[LogLine.model_validate(x) for x in lines], next_seq=next_seq
    )


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


@router.get(
    "/{build_id}/logs",
    response_model=LogPage,
    summary="Build output after line `after`",
    description=(
        "The build's log lines after line `after`, with the build's status: poll again with "
        "`after=next_seq` until the status is final. With `follow=true` the answer is a stream "
        "(application/x-ndjson) of one JSON line per log line as it is written, ending with "
        '`{"status": ..., "end": true}` once the build has ended. Needs a viewer token.'
    ),
    responses={
        200: {
            "content": {"application/x-ndjson": {"schema": {"type": "string"}, "example": ex.LOG_STREAM}},
            "description": "with follow=true: one JSON line per log line until the build ends",
        }
    },
)
async def get_logs(
    build_id: BuildId,
    db: DatabaseDep,
    after: Annotated[
        int, Query(ge=0, le=MAX_ID, description="the last line already read (its `seq`); 0 for all", examples=[2])
    ] = 0,
    follow: Annotated[bool, Query(description="stream the lines as they are written, until the build ends")] = False,
) -> LogPage | StreamingResponse:
    page = await run_in_threadpool(_page, db, build_id, after)  # 404 before any streaming starts
    if not follow:
        return page
    return StreamingResponse(_follow(db, build_id, after), media_type="application/x-ndjson")


@router.post(
    "",
    response_model=BuildOut,
    status_code=202,
    summary="Queue a build of a ref or commit",
    description=(
        "Queues a build of the project's branch or tag as it is now (resolved with the repository) or of "
        "an exact 40-hex commit, as if it had been pushed; answers the queued build (poll it, or read "
        "its logs). 404 when the ref does not exist. Needs a builder token."
    ),
    responses={
        202: {"description": "the build, queued", "content": {"application/json": {"example": ex.QUEUED_BUILD}}},
        **problem_responses(404, examples={404: {"detail": "no branch or tag 'mian' in the repository"}}),
    },
    dependencies=BUILDER,
)
def create_build(body: BuildRequest, db: DatabaseDep, config: ConfigDep, actor: ActorDep) -> BuildOut:
    build = request_build(db, config, body.project, ref=body.ref, commit=body.commit, actor=actor)
    return BuildOut.model_validate(build)


@router.post(
    "/{build_id}/rebuild",
    response_model=BuildOut,
    status_code=202,
    summary="Queue the same commit and ref again",
    description=(
        "Queues a new build of the build's commit and ref, recorded with the actor `rebuild of ID by "
        "NAME`; the old build stays as it was. 404 when there is no such build or its project left the "
        "config. Needs a builder token."
    ),
    responses={
        202: {"description": "the new build, queued", "content": {"application/json": {"example": ex.QUEUED_BUILD}}},
        **problem_responses(404, examples={404: {"detail": "no build with id 99"}}),
    },
    dependencies=BUILDER,
)
def rebuild_build(build_id: BuildId, db: DatabaseDep, config: ConfigDep, actor: ActorDep) -> BuildOut:
    return BuildOut.model_validate(rebuild(db, config, build_id, actor=actor))


@router.post(
    "/{build_id}/cancel",
    response_model=BuildOut,
    summary="Cancel a queued or running build",
    description=(
        "Cancels the build: a queued one never starts, a running one is stopped by its worker at its "
        "next heartbeat. Answers the build, now `cancelled`. 409 when it has already ended. Needs a "
        "builder token."
    ),
    dependencies=BUILDER,
)
def cancel_build(build_id: BuildId, session: SessionDep, config: ConfigDep) -> BuildOut:
    return BuildOut.model_validate(cancel(session, config, build_id))
