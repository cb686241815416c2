"""OpenAPI examples of the delivery log (``/api/v1/deliveries``), in the story of ``_examples``."""

from __future__ import annotations

from pydantic import JsonValue

from pipeline.api._examples import BUILD_ID, COMMIT, CURSOR, PREVIOUS_COMMIT, PROJECT, QUEUED_BUILD_ID, _at

__all__ = ["DELIVERY", "DELIVERY_ID", "DELIVERY_PAGE", "REDELIVERED", "REFUSED_DELIVERY"]

JsonDict = dict[str, JsonValue]

DELIVERY_ID = 310
DELIVERY: JsonDict = {
    "id": DELIVERY_ID,
    "provider": "github",
    "delivery_id": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    "hook_id": "42",
    "event": "push",
    "project": PROJECT,
    "repository": "acme/hello",
    "ref": "refs/heads/main",
    "before": PREVIOUS_COMMIT,
    "after": COMMIT,
    "outcome": "queued",
    "reason": "",
    "status_code": 202,
    "size": 7412,
    "remote_addr": "140.82.115.10",
    "received_at": _at("09:12:03"),
    "build_ids": [BUILD_ID],
    "body_kept": True,
    "redelivery_of": None,
}
REFUSED_DELIVERY: JsonDict = {
    **DELIVERY,
    "id": DELIVERY_ID + 1,
    "delivery_id": "8e1f7f4a-cc78-11e3-9b3c-2f1c6a7d0b11",
    "outcome": "bad_signature",
    "reason": "X-Hub-Signature-256 does not match the body signed with the project's secret",
    "status_code": 401,
    "received_at": _at("09:14:40"),
    "build_ids": [],
    "body_kept": False,
}
DELIVERY_PAGE: JsonDict = {"items": [REFUSED_DELIVERY, DELIVERY], "next_cursor": CURSOR}
REDELIVERED: JsonDict = {"outcome": "queued", "reason": "", "project": PROJECT, "build_ids": [QUEUED_BUILD_ID]}
