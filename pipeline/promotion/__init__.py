"""Promotion: the exact digest a build made moves through environments, recorded for good."""

from pipeline.promotion._executor import (
    Executed,
    PromotionOutcome,
    PromotionPaused,
    PromotionRefused,
    StepRetry,
    execute,
    run_promotion,
)
from pipeline.promotion._history import (
    EnvironmentState,
    ImageLineage,
    attestation_status,
    environment_matrix,
    image_lineage,
)
from pipeline.promotion._locations import Location, build_location, environment_location, environment_tag
from pipeline.promotion._merges import check_pull_requests
from pipeline.promotion._policy import refusal
from pipeline.promotion._requests import (
    queue_auto_after_build,
    queue_auto_after_promotion,
    reject_digest,
    release_environment,
    request_promotion,
    request_rollback,
)
from pipeline.promotion._verification import (
    Checked,
    check_verification,
    conclude_verification,
    queue_verification,
)
from pipeline.promotion.steps import (
    StepContext,
    StepInfo,
    StepRegistry,
    StepResult,
    build_default_registry,
    steps_for,
)

__all__ = [
    "Checked",
    "EnvironmentState",
    "Executed",
    "ImageLineage",
    "Location",
    "PromotionOutcome",
    "PromotionPaused",
    "PromotionRefused",
    "StepContext",
    "StepInfo",
    "StepRegistry",
    "StepResult",
    "StepRetry",
    "attestation_status",
    "build_default_registry",
    "build_location",
    "check_pull_requests",
    "check_verification",
    "conclude_verification",
    "environment_location",
    "environment_matrix",
    "environment_tag",
    "execute",
    "image_lineage",
    "queue_auto_after_build",
    "queue_auto_after_promotion",
    "queue_verification",
    "refusal",
    "reject_digest",
    "release_environment",
    "request_promotion",
    "request_rollback",
    "run_promotion",
    "steps_for",
]
