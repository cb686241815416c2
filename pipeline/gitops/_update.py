"""Write a promoted image into the YAML that Argo CD or Flux deploys from.

Text in, text out: no git, no files. Like Flux image-automation-controller's ``update`` package,
this only edits YAML; committing and pushing belong to the caller.

Three kinds of target are understood (see the dataclasses in ``_types``): a Helm values key
(``_helm``), a kustomization's ``images:`` entry (``_kustomize``), and a container's ``image`` in
plain Kubernetes manifests (``_manifest``). This module is only the glue between them: locate,
plan, execute, verify.

Keeping the file byte for byte
------------------------------
A reviewer reading the promotion commit must see one changed line, not a re-formatted file, so:

1. The text is parsed with ruamel.yaml's composer, whose nodes record where each value starts and
   ends in the text. The target is located there and a plan is made: values to set, entries to
   append, keys to delete (``_nodes`` and the target modules).
2. A value that already exists is replaced *in the text*, at the node's recorded marks. Nothing else
   is touched, so comments (also the end-of-line comment on the changed line), key order, quoting,
   indentation, ``---``, blank lines, CRLF and a missing final newline all survive, even in files
   that ruamel itself would re-format. The replaced value keeps its quoting style; a plain value
   stays plain unless the new one would then read as a number, bool, null or date (YAML 1.1 or
   1.2), in which case it is double-quoted (``splice``).
3. Only when keys must be created or deleted does ruamel's emitter run, with the file's own
   indentation (mapping indent, sequence indent and dash offset, detected from the file). Before
   that, the unmodified text is loaded and re-dumped; if the re-dump is not identical to the text
   (ruamel drops ``~``, comments before ``---``, ``...``, aligned ``key:   value``, CRLF, ...),
   ``RoundTripError`` is raised instead of rewriting unrelated lines. After the edit, a line diff
   must show only YAML content lines added or removed: no comment or blank line moved
   (``_roundtrip``).
4. The result is planned again and must need no further edit, so a second application is always
   a no-op and a bad edit can never be returned.
"""

from __future__ import annotations

from collections.abc import Sequence

from ruamel.yaml.nodes import Node

from pipeline.gitops._helm import plan_helm
from pipeline.gitops._kustomize import plan_kustomize
from pipeline.gitops._manifest import plan_manifest
from pipeline.gitops._nodes import Op, Plan, Set, compose
from pipeline.gitops._roundtrip import rewrite_round_trip
from pipeline.gitops._splice import detect_indent, edit_text, splice
from pipeline.gitops._types import (
    HelmValue,
    ImageChange,
    KustomizeImage,
    ManifestContainer,
    Target,
    UpdateError,
    UpdateResult,
)

__all__ = ["update_yaml"]


def update_yaml(text: str, target: Target, change: ImageChange, *, source: str = "<string>") -> UpdateResult:
    """Write ``change`` at ``target`` in ``text``, touching nothing else.

    ``source`` (the file's path in the repository) only names the file in error messages.
    """
    bom, body = ("\ufeff", text[1:]) if text.startswith("\ufeff") else ("", text)
    docs = compose(body, source)
    plan = _plan(docs, target, change, source)
    if not plan.ops:
        return UpdateResult(text, False, plan.old_value, plan.new_value)
    new_body = _execute(body, docs, plan.ops, source)
    if _plan(compose(new_body, source), target, change, source).ops:
        raise UpdateError("internal error: the edited text still differs from the change", source=source)
    return UpdateResult(bom + new_body, new_body != body, plan.old_value, plan.new_value)


def _plan(docs: list[Node], target: Target, change: ImageChange, source: str) -> Plan:
    if isinstance(target, HelmValue):
        return plan_helm(docs, target, change, source)
    if isinstance(target, KustomizeImage):
        return plan_kustomize(docs, target, change, source)
    if isinstance(target, ManifestContainer):
        return plan_manifest(docs, target, change, source)
    raise TypeError(f"unknown target {target!r}")


def _execute(text: str, docs: list[Node], ops: Sequence[Op], source: str) -> str:
    """Replacements in the text first; structural ops (if any) then through ruamel."""
    in_place = [op for op in ops if isinstance(op, Set) and op.node is not None]
    structural = [op for op in ops if not (isinstance(op, Set) and op.node is not None)]
    text = splice(text, [edit_text(text, op) for op in in_place])
    if structural:
        text = rewrite_round_trip(text, detect_indent(docs), structural, source)
    return text
