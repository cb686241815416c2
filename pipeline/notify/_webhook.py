"""The ``webhook`` target: a CloudEvents 1.0 event in structured mode, signed with HMAC-SHA256.

Structured mode (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/http-protocol-binding.md#32-structured-content-mode):
the whole event is the JSON body, ``Content-Type: application/cloudevents+json``, with the
required attributes ``specversion``, ``id``, ``source``, ``type`` and our ``subject``, ``time``,
``datacontenttype`` and ``data`` (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md).
The ``id`` is the outbox row's, the same on every retry, so a receiver drops a repeat.
``X-Pipeline-Signature: sha256=<hex HMAC of the body>`` with the target's secret, as our own
generic webhook intake expects; the signature is made at delivery and never stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import Any

from pipeline.config import NotificationTarget
from pipeline.notify._http import Request

__all__ = ["cloud_event", "request", "signature"]


def cloud_event(
    notification_id: int, event: str, subject: str, time: dt.datetime, data: dict[str, Any], source: str
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"notification-{notification_id}",
        "source": source,
        "type": f"dev.pipeline.{event}",
        "subject": subject,
        "time": time.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": data,
    }


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def request(target: NotificationTarget, event: dict[str, Any]) -> Request:
    assert target.url is not None  # the config requires it for a webhook
    body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
    headers = {"Content-Type": "application/cloudevents+json; charset=utf-8"}
    secret = target.secret()
    if secret is not None:
        headers["X-Pipeline-Signature"] = signature(secret, body)
    return Request("POST", target.url, target.url, body, headers, f"webhook target {target.name}")
