"""The OpenAPI document as served: FastAPI's, with the nulls of its examples put back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

__all__ = ["keep_example_nulls", "restore_nulls"]

Document = dict[str, Any]


def keep_example_nulls(app: FastAPI) -> None:
    """Make ``app.openapi()`` answer the document with the nulls of its examples put back.

    FastAPI encodes the document with ``exclude_none`` (fastapi/fastapi#5559), which removes
    ``"error": null`` from an example as well: the example then lacks a required property and no
    longer shows what the API answers. Every required property an example lacks whose schema
    allows null is set back to null (an optional one left out is still a valid example).
    """
    build: Callable[[], Document] = app.openapi
    last: list[Document] = []

    def openapi() -> Document:
        document = build()
        if not last or last[0] is not document:  # built anew: first call, or the routes changed
            restore_nulls(document)
            last[:] = [document]
        return document

    openapi.keeps_example_nulls = True  # type: ignore[attr-defined]
    app.openapi = openapi  # type: ignore[method-assign]


def restore_nulls(document: Document) -> None:
    """Put back the nulls of every example in ``document`` (see :func:`keep_example_nulls`)."""

    def walk_schema(schema: Any) -> None:
        if not isinstance(schema, dict):
            return
        for example in schema.get("examples", []) if isinstance(schema.get("examples"), list) else []:
            _fill(document, schema, example)
        for sub in [
            *schema.get("properties", {}).values(),
            schema.get("items"),
            *schema.get("anyOf", []),
            *schema.get("oneOf", []),
            *schema.get("allOf", []),
        ]:
            walk_schema(sub)

    def walk_media(holder: dict[str, Any]) -> None:
        schema = holder.get("schema", {})
        walk_schema(schema)
        examples = holder.get("examples")
        named: dict[str, Any] = examples if isinstance(examples, dict) else {}
        for value in [holder.get("example"), *(e.get("value") for e in named.values())]:
            _fill(document, schema, value)

    for schema in document.get("components", {}).get("schemas", {}).values():
        walk_schema(schema)
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                walk_media(parameter)
            for media in operation.get("requestBody", {}).get("content", {}).values():
                walk_media(media)
            for response in operation.get("responses", {}).values():
                for media in response.get("content", {}).values():
                    walk_media(media)


def _resolve(document: Document, schema: Any) -> dict[str, Any]:
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#/"):
        node: Any = document
        for part in schema["$ref"][2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        schema = node
    return schema if isinstance(schema, dict) else {}


def _branches(document: Document, schema: Any) -> list[dict[str, Any]]:
    schema = _resolve(document, schema)
    return [_resolve(document, s) for s in schema.get("anyOf", schema.get("oneOf", []))] or [schema]


def _nullable(document: Document, schema: Any) -> bool:
    return any(b.get("type") == "null" or "null" in (b.get("type") or []) for b in _branches(document, schema))


def _fill(document: Document, schema: Any, value: Any) -> None:
    """Nulls back into ``value`` where ``schema`` requires them, its keys in the schema's order."""
    if isinstance(value, dict):
        branch = next((b for b in _branches(document, schema) if "properties" in b), None)
        if branch is None:
            return
        properties = branch["properties"]
        for name in branch.get("required", []):
            if name not in value and _nullable(document, properties.get(name, {})):
                value[name] = None
        ordered = {name: value[name] for name in properties if name in value} | value
        value.clear()
        value.update(ordered)
        for name, sub in properties.items():
            if value.get(name) is not None:
                _fill(document, sub, value[name])
    elif isinstance(value, list):
        branch = next((b for b in _branches(document, schema) if "items" in b), None)
        for item in value if branch is not None else []:
            _fill(document, branch["items"], item)  # type: ignore[index]
