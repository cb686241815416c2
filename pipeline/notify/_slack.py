"""The ``slack`` target: a message with blocks through an incoming webhook.

``POST`` the webhook URL with ``{"text": …, "blocks": [...]}``; ``text`` is the fallback shown
in notifications. Slack answers ``200 ok``, or 400 ``invalid_payload``/``invalid_blocks``,
403 ``invalid_token``, 404 ``channel_not_found``, 410 ``channel_is_archived``, 429 with
``Retry-After``, 500 (https://api.slack.com/messaging/webhooks,
https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks,
https://api.slack.com/reference/block-kit/blocks). The URL itself is the secret: it is read
from ``url_env`` at delivery and never stored or logged.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pipeline.config import NotificationTarget
from pipeline.notify._http import Request

__all__ = ["message", "request"]

_ICON = {
    "build.succeeded": ":white_check_mark:",
    "build.failed": ":x:",
    "promotion.succeeded": ":rocket:",
    "promotion.failed": ":x:",
    "promotion.rejected": ":no_entry:",
    "rollback": ":rewind:",
    "hold": ":double_vertical_bar:",
    "release": ":arrow_forward:",
    "verification.failed": ":warning:",
}


def _escape(text: str) -> str:
    """Slack's three control characters in mrkdwn (a commit message could carry ``<!channel>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message(event: str, title: str, facts: dict[str, str], link: str | None) -> dict[str, Any]:
    lines = "\n".join(f"*{_escape(k)}:* {_escape(v)}" for k, v in facts.items())
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": lines[:3000] or _escape(title)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{_ICON.get(event, '')} `{event}`"}]},
    ]
    if link:
        blocks.append(
            {
                "type": "actions",
                "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": link}],
            }
        )
    return {"text": f"{_ICON.get(event, '')} {title}".strip(), "blocks": blocks}


def request(target: NotificationTarget, body: dict[str, Any]) -> Request:
    url = target.slack_url()
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    return Request.json("POST", origin, url, body, {}, f"slack target {target.name}")
