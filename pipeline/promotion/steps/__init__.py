"""Promotion steps, one module per kind, each a runner plus its ``StepInfo``.

``build_default_registry`` lists every kind explicitly; ``steps_for`` derives an environment's
steps from its config: verify before anything lands, copy by digest, run and probe the copy
(smoke test), bring the signatures,
sign, write to Git, and move the tag last, so whoever pulls the environment tag finds the
signatures there, and a refused Git push leaves the tag where it was.
"""

from pipeline.config import EnvironmentConfig
from pipeline.promotion.steps._contract import StepContext, StepInfo, StepRegistry, StepResult, StepStatus
from pipeline.promotion.steps._cosign import SignatureRefused
from pipeline.promotion.steps.copy_image import IMAGE_COPIER
from pipeline.promotion.steps.copy_signatures import SIGNATURE_COPIER
from pipeline.promotion.steps.git_push import GIT_PUSHER, pull_request_number
from pipeline.promotion.steps.move_tag import TAG_MOVER, TagMoved
from pipeline.promotion.steps.sign import IMAGE_SIGNER
from pipeline.promotion.steps.smoke_test import SMOKE_TESTER
from pipeline.promotion.steps.verify_signature import SIGNATURE_VERIFIER

__all__ = [
    "SignatureRefused",
    "StepContext",
    "StepInfo",
    "StepRegistry",
    "StepResult",
    "StepStatus",
    "TagMoved",
    "build_default_registry",
    "pull_request_number",
    "steps_for",
]


def build_default_registry() -> StepRegistry:
    """Every step kind, listed explicitly: importing a module registers nothing."""
    return StepRegistry(
        [SIGNATURE_VERIFIER, IMAGE_COPIER, SMOKE_TESTER, SIGNATURE_COPIER, IMAGE_SIGNER, GIT_PUSHER, TAG_MOVER]
    )


def steps_for(env: EnvironmentConfig) -> list[str]:
    """The kinds one environment's promotions run, in order."""
    return [
        *(["verify-signature"] if env.verify else []),
        "copy-image",
        *(["smoke-test"] if env.smoke_test else []),
        "copy-signatures",
        *(["sign"] if env.sign else []),
        *(["git-push"] if env.gitops else []),
        "move-tag",
    ]
