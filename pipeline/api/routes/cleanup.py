"""``/api/v1/cleanup``: the registry cleanup of build repositories, planned or done (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from pipeline import cleanup
from pipeline.api import _examples as ex
from pipeline.api import _examples_cleanup as exc
from pipeline.api._cleanup_schemas import CleanupOut, CleanupProjectOut, CleanupRequest
from pipeline.api.deps import Allowed, ConfigDep, DatabaseDep
from pipeline.api.problems import problem_responses

router = APIRouter(
    prefix="/api/v1/cleanup",
    tags=["cleanup"],
    dependencies=[Depends(Allowed("admin"))],
    responses=problem_responses(400, 401, 403, 422, examples={403: ex.forbidden(ex.BUILDER_TOKEN, "builder", "admin")}),
)


@router.post(
    "",
    response_model=CleanupOut,
    summary="Clean the build repositories by the retention policy (or say what it would delete)",
    description=(
        "Plans each project's cleanup from Git (last commits of every live branch, tags), the build "
        "history (age) and the promotions (what runs or ran recently, what is being promoted), and "
        "answers every image with the reason it is kept or deleted. With `dry_run: false` it also "
        "deletes: signatures and attestations first, then tags, then the manifest by digest, each image "
        "checked again right before under the promoter's locks; the build rows stay and say "
        "`image_deleted_at`. A registry that refuses deletes (405) stops that project's run with "
        "`refused` saying what to change. Blob space comes back with the registry's garbage collection "
        "(see the README). Needs an admin token."
    ),
    responses=problem_responses(404, examples={404: {"detail": "no project named 'helo' in the config"}})
    | {200: {"content": {"application/json": {"examples": {"dry run": {"value": exc.CLEANUP}}}}}},
)
def run_cleanup(body: CleanupRequest, db: DatabaseDep, config: ConfigDep) -> CleanupOut:
    done = cleanup.clean_registries(db, config, dry_run=body.dry_run, project=body.project)
    return CleanupOut(projects=[CleanupProjectOut.model_validate(p.to_dict()) for p in done])
