"""Build: a pushed commit becomes an image in the project's registry, recorded by digest.

The build job is a named list of steps (``_steps``: resolve → checkout → build → push →
record → insight) run under the worker's claim (``_job``); ``_spec`` decides what is built and
which tags move, ``_provenance`` says how it was made, ``_logs`` keeps the live log, and
``_requests`` queues the builds people ask for. The digest is written in one place:
``store.builds.record_succeeded``, called by the record step.
"""

from pipeline.build._job import run_build
from pipeline.build._logs import LogSink
from pipeline.build._provenance import attach_provenance, load_signing_key, provenance_for
from pipeline.build._requests import cancel, rebuild, request_build
from pipeline.build._spec import Tags, build_spec, split_tags
from pipeline.build._steps import STEPS, BuildContext, BuildSkipped, Recorded

__all__ = [
    "STEPS",
    "BuildContext",
    "BuildSkipped",
    "LogSink",
    "Recorded",
    "Tags",
    "attach_provenance",
    "build_spec",
    "cancel",
    "load_signing_key",
    "provenance_for",
    "rebuild",
    "request_build",
    "run_build",
    "split_tags",
]
