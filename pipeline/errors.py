"""One error tree for the whole service.

Every failure a user can act on is a ``PipelineError``; the API maps the tree to RFC 9457
problem responses in one place (``pipeline.api.problems``), the CLI prints the message, and
workers use ``retryable`` to decide between "try again later" and "a human must act"::

    PipelineError
    ├── ConfigError                 (bad config file: names the key)
    ├── InvalidRequest      422
    │   ├── BadPayload      400     (malformed webhook body)
    │   ├── BadSignature    401
    │   ├── PayloadTooLarge 413
    │   └── UnsupportedMediaType 415
    ├── Unauthenticated     401     (no API token, or one that is unknown or revoked)
    ├── Forbidden           403     (the token's role does not allow it)
    ├── NotFound            404
    ├── Conflict            409
    │   ├── LeaseLost               (another worker owns the job now)
    │   ├── LockBusy                (another worker holds the tag's or repository's lock: retried)
    │   └── PolicyViolation         (a promotion the environment's policy refuses)
    ├── SigningError        422     (a key that cannot be read, a signature that does not verify)
    └── UpstreamError       502     (retryable unless said otherwise)
        ├── GitError
        │   └── GitPushRefused      (the repository declined the push: a hook, a protected branch)
        ├── BuildError              (the Dockerfile failed: not retryable)
        ├── EngineError             (Docker engine unreachable: retryable)
        ├── SmokeTestFailed         (the candidate exited, never answered or answered wrong)
        ├── RegistryError
        │   ├── RegistryAuthError   (credentials refused: not retryable)
        │   └── RegistryRefused     (a 4xx answer such as MANIFEST_BLOB_UNKNOWN: not retryable)
        │       └── DeletesDisabled (the registry does not allow deleting manifests: 405)
        └── DeliveryError           (a status or notification not delivered: retryable unless refused)
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BadPayload",
    "BadSignature",
    "BuildError",
    "ConfigError",
    "Conflict",
    "DeletesDisabled",
    "DeliveryError",
    "EngineError",
    "Forbidden",
    "GitError",
    "GitPushRefused",
    "InvalidRequest",
    "LeaseLost",
    "LockBusy",
    "NotFound",
    "PayloadTooLarge",
    "PipelineError",
    "PolicyViolation",
    "RegistryAuthError",
    "RegistryError",
    "RegistryRefused",
    "SigningError",
    "SmokeTestFailed",
    "Unauthenticated",
    "UnsupportedMediaType",
    "UpstreamError",
]


class PipelineError(Exception):
    """Base of every error this service raises on purpose."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "about:blank"
    title: ClassVar[str] = "Internal error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(PipelineError):
    title = "Invalid configuration"


class InvalidRequest(PipelineError):
    status = 422
    type = "/problems/invalid-request"
    title = "Invalid request"


class BadPayload(InvalidRequest):
    status = 400
    type = "/problems/bad-payload"
    title = "Malformed payload"


class BadSignature(InvalidRequest):
    status = 401
    type = "/problems/bad-signature"
    title = "Signature verification failed"


class PayloadTooLarge(InvalidRequest):
    status = 413
    type = "/problems/payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(InvalidRequest):
    status = 415
    type = "/problems/unsupported-media-type"
    title = "Unsupported media type"


class Unauthenticated(PipelineError):
    status = 401
    type = "/problems/unauthenticated"
    title = "Authentication required"


class Forbidden(PipelineError):
    status = 403
    type = "/problems/forbidden"
    title = "Not allowed"


class NotFound(PipelineError):
    status = 404
    type = "/problems/not-found"
    title = "Not found"


class Conflict(PipelineError):
    status = 409
    type = "/problems/conflict"
    title = "Conflict"


class LeaseLost(Conflict):
    title = "Lease lost"


class LockBusy(Conflict):
    """Another worker holds the lock of the tag or repository this job must change, longer than
    a lease: the job goes back to the queue and waits its turn, however long the holder takes."""

    title = "Busy"
    retryable = True


class PolicyViolation(Conflict):
    type = "/problems/policy"
    title = "Promotion refused by policy"


class SigningError(PipelineError):
    status = 422
    type = "/problems/signing"
    title = "Signing or verification failed"


class UpstreamError(PipelineError):
    status = 502
    type = "/problems/upstream"
    title = "Upstream failure"
    retryable = True


class GitError(UpstreamError):
    title = "Git operation failed"


class GitPushRefused(GitError):
    title = "The Git repository refused the push"
    retryable = False


class BuildError(UpstreamError):
    title = "Build failed"
    retryable = False


class EngineError(UpstreamError):
    title = "Docker engine unavailable"


class SmokeTestFailed(UpstreamError):
    """The candidate failed its smoke test; ``record`` (the container's log, where it ran) is
    kept with the failed step on the promotion. Not retryable: the same bytes fail again."""

    title = "Smoke test failed"
    retryable = False

    def __init__(self, message: str, record: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.record = record or {}


class RegistryError(UpstreamError):
    title = "Registry operation failed"


class RegistryAuthError(RegistryError):
    title = "Registry refused the credentials"
    retryable = False


class RegistryRefused(RegistryError):
    title = "Registry refused the request"
    retryable = False


class DeletesDisabled(RegistryRefused):
    """The registry answers deletes with 405 (distribution's ``storage.delete.enabled: false``,
    a read-only Harbor project): nothing can be cleaned there until an operator allows it."""

    title = "Registry does not allow deletes"


class DeliveryError(UpstreamError):
    """A commit status, deployment report or notification the receiver did not take.

    Retryable (down, timed out, 429, 5xx) unless the receiver refused it (401, 403, 404,
    422: a human must fix the token or the config); ``retry_after`` is the receiver's own
    ``Retry-After`` when it sent one.
    """

    title = "Notification not delivered"

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable  # type: ignore[misc]
        self.retry_after = retry_after
