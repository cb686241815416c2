"""Per-build image insight: layers, wasted bytes, efficiency, Dockerfile advice, comparison.

"Layers are additive": a file a later layer deletes or overwrites is still in every pull. After
a build the worker saves the image and records what it costs, with the numbers dive reports,
so a team can see (and compare between builds) what its Dockerfile wastes::

    insight = save_and_analyze(docker_cmd, image_id, scratch_dir)   # docker save + analysis
    advice = advise(dockerfile_path, insight)                       # hadolint + our rules
    delta = compare(previous_insight_or_its_dict, insight)          # size/waste/layer deltas
    store(insight.to_dict(), [a.to_dict() for a in advice], delta)

Modules behind this one: ``_archive`` reads the ``docker save`` archive (streaming, headers
only), ``_filetree`` and ``_efficiency`` reproduce dive's trees and score, ``_gosort`` Go's sort
order, ``_layers`` the history, ``_dockerfile`` / ``_rules`` / ``_hadolint`` / ``_advice`` the
advice, ``_compare`` the deltas, ``_buildsteps`` the Dockerfile steps (cached, seconds) read back from
the build's log.
"""

from __future__ import annotations

from pipeline.insight._advice import advise
from pipeline.insight._analyze import analyze_archive, save_and_analyze
from pipeline.insight._buildsteps import BuildStep, build_steps
from pipeline.insight._compare import compare
from pipeline.insight._model import Advice, ImageInsight, LayerInfo, WastedFile

__all__ = [
    "Advice",
    "BuildStep",
    "ImageInsight",
    "LayerInfo",
    "WastedFile",
    "advise",
    "analyze_archive",
    "build_steps",
    "compare",
    "save_and_analyze",
]
