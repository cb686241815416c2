"""The OpenAPI document is complete and documented, and its examples are true to it.

Walks the whole document the app serves, so an operation, parameter or model added later
without these fails here: every operation has a summary and a description; every parameter a
description, and every path parameter an example; every model (component schema), JSON request
body and JSON response an example; every 4xx an ``application/problem+json`` example of its own
status. Every example validates against its schema (``$ref`` resolved in the document), parses
as the model it shows and serializes back unchanged, and tells the same story: full commit SHAs,
``sha256:`` digests, image references by digest, RFC 3339 UTC times, statuses and roles that exist.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from pipeline.access import ROLES
from pipeline.api import create_app, schemas
from pipeline.api.problems import PROBLEM_JSON
from pipeline.config import parse_config
from pipeline.store import Database, open_database

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
Operation = tuple[str, str, dict[str, Any]]

HEX40 = re.compile(r"^[0-9a-f]{40}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
IMAGE = re.compile(r"^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$")
UTC_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
COMMIT_KEYS = {"commit", "gitops_commit", "before", "after", "gitCommit"}
TIME_KEYS = {"since", "startedOn", "finishedOn"}


def _app(db: Database) -> FastAPI:
    return create_app(parse_config({}), db)


@pytest.fixture(scope="module")
def document() -> Iterator[dict[str, Any]]:
    db = open_database("sqlite:///:memory:")  # never queried: building the document reads no table
    try:
        yield _app(db).openapi()
    finally:
        db.dispose()


def test_the_served_document_keeps_the_nulls_of_its_examples() -> None:
    db = open_database("sqlite:///:memory:")
    try:
        served = _app(db).openapi()
    finally:
        db.dispose()
    build = served["components"]["schemas"]["BuildOut"]["examples"][0]
    assert "error" in build and build["error"] is None


def _operations(document: dict[str, Any]) -> list[Operation]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _pointer(*parts: str | int) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        schema = node
    return schema


def _is_json(media_type: str) -> bool:
    kind = media_type.split(";")[0].strip()
    return kind == "application/json" or kind.endswith("+json")


def _has_example(document: dict[str, Any], media: dict[str, Any]) -> bool:
    """An example on the media type, or on the schema it names (a nullable ``anyOf`` counts its other branch)."""
    if media.get("example") is not None or media.get("examples"):
        return True
    schema = _resolve(document, media.get("schema", {}))
    branches = [_resolve(document, s) for s in schema.get("anyOf", schema.get("oneOf", [])) if s != {"type": "null"}]
    return bool(schema.get("examples")) or any(b.get("examples") for b in branches)


def _missing_docs(operation: dict[str, Any]) -> set[str]:
    """What an operation lacks: "description", and each parameter without a description (or path example)."""
    missing = set() if len(operation.get("description") or "") >= 40 else {"description"}
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        example = "example" in parameter or parameter.get("examples") or schema.get("examples")
        if not parameter.get("description") or (parameter["in"] == "path" and not example):
            missing.add(parameter["name"])
    return missing


def test_every_operation_has_a_summary_and_says_what_it_is_for(document: dict[str, Any]) -> None:
    operations = _operations(document)
    assert len(operations) >= 20
    for method, path, operation in operations:
        assert operation.get("summary"), f"{method} {path}: add summary= to the route"
        missing = _missing_docs(operation)
        assert "description" not in missing, f"{method} {path}: add description= saying what it is for and who may"
        assert operation.get("description") != operation["summary"] or "description" in missing


def test_every_parameter_has_a_description_and_every_path_parameter_an_example(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        missing = _missing_docs(operation) - {"description"}
        assert not missing, f"{method} {path}: describe {sorted(missing)} (Query/Path(description=..., examples=...))"


def test_every_model_has_an_example(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    assert len(components) >= 20
    lacking = sorted(name for name, schema in components.items() if not schema.get("examples"))
    assert not lacking, f"add json_schema_extra={{'examples': [...]}} (values in pipeline/api/_examples.py): {lacking}"


def test_every_json_body_and_response_has_an_example(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
            if _is_json(media_type):
                assert _has_example(document, media), f"{method} {path}: request body {media_type} has no example"
        for status, response in operation["responses"].items():
            for media_type, media in response.get("content", {}).items():
                if _is_json(media_type):
                    assert _has_example(document, media), f"{method} {path} {status} {media_type}: no example"
            if status.startswith("2"):
                assert response.get("content"), f"{method} {path} {status}: no content documented"


def test_every_client_error_is_a_problem_with_an_example_of_its_status(document: dict[str, Any]) -> None:
    errors = 0
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            if not status.startswith("4"):
                continue
            errors += 1
            content = response.get("content", {})
            assert PROBLEM_JSON in content, f"{method} {path} {status}: declare it with problem_responses()"
            example = content[PROBLEM_JSON].get("example")
            assert example, f"{method} {path} {status}: the problem has no example"
            assert example["status"] == int(status), (method, path, status, example)
            assert example["type"] == "about:blank" or example["type"].startswith("/problems/"), example
            assert example["title"] and example["detail"], example
    assert errors >= 50


def _schema_examples(document: dict[str, Any], schema: Any, pointer: str) -> Iterator[tuple[str, Any]]:
    """(schema pointer, example) of ``examples`` in a schema and its subschemas."""
    if not isinstance(schema, dict):
        return
    for example in schema.get("examples", []) if isinstance(schema.get("examples"), list) else []:
        yield pointer, example
    for key in ("properties", "$defs"):
        for name, sub in schema.get(key, {}).items():
            yield from _schema_examples(document, sub, pointer + _pointer(key, name))
    for key in ("items", "additionalProperties", "not"):
        yield from _schema_examples(document, schema.get(key), pointer + _pointer(key))
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for i, sub in enumerate(schema.get(key, [])):
            yield from _schema_examples(document, sub, pointer + _pointer(key, i))


def _media_examples(holder: dict[str, Any], pointer: str) -> Iterator[tuple[str, Any]]:
    """(schema pointer, example) of a media type or parameter: ``example`` and the values of ``examples``."""
    if "example" in holder:
        yield pointer + "/schema", holder["example"]
    if isinstance(holder.get("examples"), dict):
        for named in holder["examples"].values():
            yield pointer + "/schema", named["value"]


def _all_examples(document: dict[str, Any]) -> list[tuple[str, Any]]:
    """(schema pointer, example) of every example in the document."""
    return [(pointer, example) for pointer, example, _ in _named_examples(document)]


def _named_examples(document: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(schema pointer, example, the parameter's name or "") of every example in the document."""
    found: list[tuple[str, Any, str]] = []
    for name, schema in document["components"]["schemas"].items():
        found += [(*e, "") for e in _schema_examples(document, schema, _pointer("components", "schemas", name))]
    for method, path, operation in _operations(document):
        at = _pointer("paths", path, method.lower())
        for i, parameter in enumerate(operation.get("parameters", [])):
            here = [
                *_media_examples(parameter, at + _pointer("parameters", i)),
                *_schema_examples(document, parameter.get("schema"), at + _pointer("parameters", i, "schema")),
            ]
            found += [(*e, parameter["name"]) for e in here]
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
            found += [(*e, "") for e in _media_examples(media, at + _pointer("requestBody", "content", media_type))]
        for status, response in operation["responses"].items():
            for media_type, media in response.get("content", {}).items():
                where = at + _pointer("responses", status, "content", media_type)
                found += [
                    (*e, "")
                    for e in (
                        *_media_examples(media, where),
                        *_schema_examples(document, media.get("schema"), where + "/schema"),
                    )
                ]
    return found


def test_every_example_validates_against_its_schema(document: dict[str, Any]) -> None:
    registry = Registry().with_resource(
        "urn:openapi", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    examples = _all_examples(document)
    assert len(examples) >= 60
    for pointer, example in examples:
        validator = jsonschema.Draft202012Validator(
            {"$ref": "urn:openapi#" + pointer},
            registry=registry,
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        )
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(example)]
        assert not errors, f"example at {pointer} does not match its schema:\n  " + "\n  ".join(errors)


def _model_of(document: dict[str, Any], pointer: str) -> tuple[type[BaseModel], bool] | None:
    """The model a schema shows (and whether as a list of it), when it is one of pipeline.api.schemas."""
    node: Any = document
    for part in pointer.strip("/").split("/"):
        node = node[int(part) if isinstance(node, list) else part.replace("~1", "/").replace("~0", "~")]
    node = next((s for s in node.get("anyOf", []) if s != {"type": "null"}), node)  # a nullable body
    many = node.get("type") == "array"
    ref = (node.get("items", {}) if many else node).get("$ref", "")
    name = (
        ref.rsplit("/", 1)[-1]
        if ref
        else (pointer.rsplit("/", 1)[-1] if "/components/schemas/" in pointer and pointer.count("/") == 3 else "")
    )
    model = getattr(schemas, name, None) if name else None
    return (model, many) if isinstance(model, type) and issubclass(model, BaseModel) else None


def _models(value: Any) -> Iterator[BaseModel]:
    if isinstance(value, BaseModel):
        yield value
        for name in type(value).model_fields:
            yield from _models(getattr(value, name))
    elif isinstance(value, list):
        for item in value:
            yield from _models(item)


def _enum(document: dict[str, Any], path: str, name: str) -> set[str]:
    """The values of a query parameter's enum: the statuses the API itself filters by."""
    parameter = next(p for p in document["paths"][path]["get"]["parameters"] if p["name"] == name)
    schema = parameter["schema"]
    return {v for branch in schema.get("anyOf", [schema]) for v in branch.get("enum", [])}


def test_examples_parse_as_their_models_and_serialize_back_unchanged(document: dict[str, Any]) -> None:
    build_statuses = _enum(document, "/api/v1/builds", "status")
    promotion_statuses = _enum(document, "/api/v1/promotions", "status")
    assert {"queued", "succeeded", "superseded"} <= build_statuses
    assert {"pending", "awaiting_merge"} <= promotion_statuses
    checked = 0
    for pointer, example in _all_examples(document):
        shown = _model_of(document, pointer)
        if shown is None:
            continue
        model, many = shown
        for item in example if many else [example]:
            parsed = model.model_validate(item)
            assert parsed.model_dump(mode="json", by_alias=True, exclude_unset=True) == item, (
                f"{pointer}: {model.__name__} would not serialize this example as written"
            )
            for found in _models(parsed):
                checked += 1
                if isinstance(found, schemas.BuildOut | schemas.LogPage):
                    assert found.status in build_statuses, (pointer, found.status)
                if isinstance(found, schemas.PromotionOut):
                    assert found.status in promotion_statuses, (pointer, found.status)
                if isinstance(found, schemas.BuildOut) and found.digest:
                    assert found.image == f"{found.image.split('@')[0]}@{found.digest}", (pointer, found.image)
    assert checked >= 50


def _values(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _values(v, str(k))
    elif isinstance(value, list):
        for item in value:
            yield from _values(item, key)
    else:
        yield key, value


def test_examples_use_real_shapes_of_commits_digests_images_times_and_roles(document: dict[str, Any]) -> None:
    seen = set()
    for pointer, example, parameter in _named_examples(document):
        for key, value in _values(example, parameter):
            if not isinstance(value, str):
                continue
            where = f"{pointer} {key}={value!r}"
            if key in COMMIT_KEYS:
                seen.add("commit")
                assert HEX40.match(value), f"{where}: a commit is 40 lowercase hex"
            elif key.endswith("digest"):
                seen.add("digest")
                assert DIGEST.match(value), f"{where}: a digest is sha256: and 64 lowercase hex"
            elif key == "image":
                seen.add("image")
                assert IMAGE.match(value), f"{where}: an image is registry/repository@sha256:..."
            elif key.endswith("_at") or key in TIME_KEYS:
                seen.add("time")
                assert UTC_TIME.match(value), f"{where}: a time is RFC 3339 in UTC (...Z)"
                assert dt.datetime.fromisoformat(value).utcoffset() == dt.timedelta(0), where
            elif key == "role":
                seen.add("role")
                assert value in ROLES, f"{where}: roles are {ROLES}"
    assert seen == {"commit", "digest", "image", "time", "role"}
