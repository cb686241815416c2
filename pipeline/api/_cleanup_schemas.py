"""Request and response bodies of ``/api/v1/cleanup`` (kept beside ``schemas``, which is full)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict, JsonValue

from pipeline.api import _examples_cleanup as exc

__all__ = ["CleanupDecisionOut", "CleanupOut", "CleanupProjectOut", "CleanupRequest", "DeletedImageOut"]


def _examples(*values: JsonValue) -> JsonDict:
    return {"examples": list(values)}


class CleanupRequest(BaseModel):
    """Which project's build repository to clean (all when omitted); a dry run by default."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_examples(*exc.CLEANUP_REQUESTS))

    project: str | None = Field(default=None, description="one project; all projects when omitted or null")
    dry_run: bool = Field(default=True, description="only say what would be deleted and why (the default)")


class CleanupDecisionOut(BaseModel):
    """One image of the plan: kept with the first rule that keeps it, or deleted with why none did."""

    model_config = ConfigDict(json_schema_extra=_examples(*exc.CLEANUP_DECISIONS))

    build_id: int
    digest: str
    commit: str
    branch: str | None
    tags: list[str]
    action: str = Field(description="keep or delete")
    reason: str


class DeletedImageOut(BaseModel):
    """An image deleted from the build repository, with its tags and signatures."""

    model_config = ConfigDict(json_schema_extra=_examples(exc.DELETED_IMAGE))

    digest: str
    build_ids: list[int]
    tags: list[str]
    signatures: list[str] = Field(description="the .sig/.att tags and referrers deleted with it")


class CleanupProjectOut(BaseModel):
    """One project's cleanup: every decision, what was deleted, what stopped it."""

    model_config = ConfigDict(json_schema_extra=_examples(exc.CLEANUP_PROJECT, exc.CLEANUP_REFUSED))

    project: str
    dry_run: bool
    kept: int
    deleted: int
    decisions: list[CleanupDecisionOut]
    deleted_images: list[DeletedImageOut]
    refused: str | None = Field(description="the registry does not allow deletes: what to change (nothing deleted)")
    errors: list[str]
    seconds: float


class CleanupOut(BaseModel):
    """The cleanup of each project asked for."""

    model_config = ConfigDict(json_schema_extra=_examples(exc.CLEANUP))

    projects: list[CleanupProjectOut]
