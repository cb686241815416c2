"""``/api/v1/config``: which config this process runs, and reloading it everywhere (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from pipeline.api import _examples as ex
from pipeline.api.deps import ActorDep, Allowed, DatabaseDep, SessionDep
from pipeline.api.problems import problem_responses
from pipeline.api.schemas import ConfigOut, ConfigReloadOut, ReloadRecord
from pipeline.config import LiveConfig
from pipeline.config_reload import CHECK_SECONDS, reload_config
from pipeline.store import reloads

router = APIRouter(
    prefix="/api/v1/config",
    tags=["config"],
    dependencies=[Depends(Allowed("admin"))],
    responses=problem_responses(401, 403, 422, examples={403: ex.forbidden(ex.BUILDER_TOKEN, "builder", "admin")}),
)


def _live(request: Request) -> LiveConfig:
    return request.app.state.live  # type: ignore[no-any-return]


@router.get(
    "",
    response_model=ConfigOut,
    summary="The config this process runs",
    description="Its file, content fingerprint and load time, the projects and environments it names, and "
    "the newest reload anyone asked for. Each process answers for itself: compare fingerprints "
    "to see that every process has taken a reload.",
)
def get_config(request: Request, session: SessionDep) -> ConfigOut:
    live = _live(request)
    newest = reloads.latest(session)
    return ConfigOut(
        source=str(live.source) if live.source else None,
        fingerprint=live.fingerprint,
        loaded_at=live.loaded_at,
        projects={name: [env.name for env in project.environments] for name, project in live.current.projects.items()},
        last_reload=ReloadRecord.model_validate(newest) if newest else None,
    )


@router.post(
    "/reload",
    response_model=ConfigReloadOut,
    summary="Read the config file again, in every process",
    description="This process reads its file again and answers with what changed. A file that does not "
    "validate changes nothing anywhere: the answer is a 422 naming each bad key. Other processes "
    f"(API processes, workers) read their own file within {CHECK_SECONDS:.0f} s. "
    "`database_url` takes effect only at a restart.",
    responses=problem_responses(
        422,
        examples={
            422: {
                "title": "Invalid request",
                "detail": "/etc/pipeline/config.yaml: invalid configuration\n"
                "  (top level): projects.hello.environments.dev.registry: no registry named 'ghcr'\n"
                "nothing was reloaded: the running config is unchanged",
            }
        },
    ),
)
def reload(request: Request, db: DatabaseDep, actor: ActorDep) -> ConfigReloadOut:
    done = reload_config(db, _live(request), actor)
    change = done.change
    return ConfigReloadOut(
        reload_id=done.reload_id,
        source=str(done.source),
        fingerprint=change.fingerprint,
        previous=change.previous,
        changed=not change.unchanged,
        summary=change.summary(),
        projects_added=list(change.added),
        projects_removed=list(change.removed),
        projects_changed=list(change.changed),
        sections=list(change.sections),
        restart_required=list(change.restart_required),
        others_within_seconds=CHECK_SECONDS,
    )
