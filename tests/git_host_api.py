"""A recording stand-in for the Git hosts' status APIs, a webhook receiver and Slack: none of
them can be reached from these machines (a real Gitea is tried separately, see the report).

Each route answers as its API reference documents it, and every request is recorded (method,
path, headers, body) so tests check exactly what was sent:

- GitHub REST 2022-11-28, Bearer token; an optional path prefix stands for GitHub Enterprise's
  ``/api/v3``: ``POST /repos/{o}/{r}/statuses/{sha}`` -> 201
  (https://docs.github.com/en/rest/commits/statuses#create-a-commit-status),
  ``POST /repos/{o}/{r}/deployments`` -> 201 with ``id``
  (https://docs.github.com/en/rest/deployments/deployments#create-a-deployment),
  ``POST /repos/{o}/{r}/deployments/{id}/statuses`` -> 201, 404 for an unknown deployment
  (https://docs.github.com/en/rest/deployments/statuses#create-a-deployment-status);
  401 ``{"message": "Bad credentials"}``.
- GitLab v4, ``PRIVATE-TOKEN``: ``POST /api/v4/projects/{id}/statuses/{sha}`` -> 201; the
  state a status already has again -> 400 "Cannot transition status"
  (https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit); 401 ``{"message": "401 Unauthorized"}``.
- Gitea/Forgejo v1, ``Authorization: token``: ``POST /api/v1/repos/{o}/{r}/statuses/{sha}`` -> 201
  (https://gitea.com/api/swagger#/repository/repoCreateStatus).
- Bitbucket Cloud 2.0, Bearer: ``POST /2.0/repositories/{w}/{r}/commit/{sha}/statuses/build``
  -> 201, 400 without ``url`` (https://developer.atlassian.com/cloud/bitbucket/rest/api-group-commit-statuses/).
- Bitbucket Data Center, Bearer: ``POST /rest/build-status/1.0/commits/{sha}`` -> 204
  (https://developer.atlassian.com/server/bitbucket/rest/v906/api-group-build-status/).
- A webhook receiver ``POST /hooks/{name}`` -> 204, and Slack's incoming webhook
  ``POST /services/{T}/{B}/{secret}`` -> 200 ``ok``, 400 ``invalid_blocks`` without blocks
  (https://api.slack.com/messaging/webhooks).

Faults for the delivery tests: ``fail_every`` (every n-th request answers 503 with
``Retry-After: 0`` before looking at it), ``delay`` (seconds before answering the first
``slow_requests`` requests), and a wrong token (401).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeHosts", "Recorded"]

_SHA = r"[0-9a-f]{40}"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class FakeHosts:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Recorded] = []  # every request, as it came
        self.accepted: list[Recorded] = []  # the ones answered 2xx
        self.fail_every = 0
        self.delay = 0.0
        self.slow_requests = 0
        self.deployments: dict[int, dict[str, Any]] = {}
        self._gitlab: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHosts:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def sequence(self) -> list[tuple[str, str, Any]]:
        """What the receivers took, in order: (method, path, body)."""
        return [(c.method, c.path, c.json) for c in self.accepted]

    def _answer(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.calls.append(request)
            n = len(self.calls)
            slow = n <= self.slow_requests
        if slow:
            time.sleep(self.delay)
        if self.fail_every and n % self.fail_every == 0:
            return 503, {"message": "Service Unavailable"}, {"Retry-After": "0"}
        code, body = self._route(request)
        if 200 <= code < 300:
            with self._lock:
                self.accepted.append(request)
        return code, body, {}

    def _route(self, r: Recorded) -> tuple[int, Any]:
        h, path, body = r.headers, r.path, r.json
        if m := re.fullmatch(r"/hooks/[\w.-]+", path):
            return 204, None
        if re.fullmatch(r"/services/\w+/\w+/\w+", path):
            return (200, "ok") if isinstance(body, dict) and body.get("blocks") else (400, "invalid_blocks")
        if m := re.fullmatch(
            rf"(?:/api/v3)?/repos/([\w.-]+)/([\w.-]+)/(statuses/{_SHA}|deployments(?:/(\d+)/statuses)?)", path
        ):
            if h.get("authorization") != f"Bearer {self.token}":
                return 401, {"message": "Bad credentials"}
            if m[3].startswith("statuses"):
                return 201, {"id": len(self.accepted) + 1, **body}
            if m[4] is None:
                number = len(self.deployments) + 1
                self.deployments[number] = body
                return 201, {"id": number, **body}
            if int(m[4]) not in self.deployments:
                return 404, {"message": "Not Found"}
            return 201, {"id": len(self.accepted) + 1, **body}
        if m := re.fullmatch(rf"/api/v4/projects/([^/]+)/statuses/({_SHA})", path):
            if h.get("private-token") != self.token:
                return 401, {"message": "401 Unauthorized"}
            key = (m[1], m[2], body.get("name", "default"))
            if self._gitlab.get(key) == body["state"]:
                return 400, {"message": f"Cannot transition status via :{body['state']} from :{body['state']}"}
            self._gitlab[key] = body["state"]
            return 201, {"id": len(self.accepted) + 1, "status": body["state"]}
        if re.fullmatch(rf"/api/v1/repos/[\w.-]+/[\w.-]+/statuses/{_SHA}", path):
            if h.get("authorization") != f"token {self.token}":
                return 401, {"message": "token is required"}
            return 201, {"id": len(self.accepted) + 1, "status": body["state"]}
        bitbucket = re.fullmatch(rf"/2\.0/repositories/[\w.-]+/[\w.-]+/commit/{_SHA}/statuses/build", path)
        if bitbucket or re.fullmatch(rf"/rest/build-status/1\.0/commits/{_SHA}", path):
            if h.get("authorization") != f"Bearer {self.token}":
                return 401, {"type": "error", "error": {"message": "Access token expired or invalid"}}
            if not body.get("url"):
                return 400, {"type": "error", "error": {"message": "url: This field is required."}}
            return (201, {"type": "commitstatus", **body}) if bitbucket else (204, None)
        return 404, {"message": "Not Found"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                code, answer, extra = fake._answer(Recorded("POST", self.path, headers, body))
                data = (
                    b""
                    if answer is None
                    else (answer.encode() if isinstance(answer, str) else json.dumps(answer).encode())
                )
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if isinstance(answer, str) else "application/json")
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
