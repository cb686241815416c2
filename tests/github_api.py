"""A stand-in for GitHub's pull-request API: GitHub itself cannot be reached from these machines.

It implements the three calls our client makes, as GitHub documents them (REST API
2022-11-28): ``POST /repos/{owner}/{repo}/pulls`` (201, or 422 "A pull request already exists"),
``GET /repos/{owner}/{repo}/pulls?head=owner:branch&state=open``, and
``GET /repos/{owner}/{repo}/pulls/{number}`` (``state``, ``merged``, ``html_url``), with Bearer
token auth. The Git side of a pull request (its branch) lives in a real bare repository.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeGitHub"]


class FakeGitHub:
    def __init__(self, repository: str, token: str) -> None:
        self.repository, self.token = repository, token
        self.pulls: dict[int, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def merge(self, number: int) -> None:
        self.pulls[number].update(state="closed", merged=True)

    def close(self, number: int) -> None:
        self.pulls[number].update(state="closed", merged=False)

    def _create(self, body: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            if any(p["head"]["ref"] == body.get("head") and p["state"] == "open" for p in self.pulls.values()):
                return 422, {
                    "message": "Validation Failed",
                    "errors": [
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {body.get('head')}.",
                        }
                    ],
                }
            number = len(self.pulls) + 1
            self.pulls[number] = {
                "number": number,
                "state": "open",
                "merged": False,
                "title": body["title"],
                "body": body.get("body"),
                "head": {"ref": body["head"]},
                "base": {"ref": body["base"]},
                "html_url": f"https://github.example/{self.repository}/pull/{number}",
            }
            return 201, self.pulls[number]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                fake.calls.append((method, self.path))
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    return self._answer(401, {"message": "Bad credentials"})
                parts = urlsplit(self.path)
                prefix = f"/repos/{fake.repository}/pulls"
                if method == "POST" and parts.path == prefix:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                    return self._answer(*fake._create(body))
                if method == "GET" and parts.path == prefix:
                    query = parse_qs(parts.query)
                    head = query.get("head", [""])[0].split(":", 1)[-1]
                    return self._answer(
                        200, [p for p in fake.pulls.values() if p["head"]["ref"] == head and p["state"] == "open"]
                    )
                if method == "GET" and (m := re.fullmatch(re.escape(prefix) + r"/(\d+)", parts.path)):
                    found = fake.pulls.get(int(m[1]))
                    return self._answer(200, found) if found else self._answer(404, {"message": "Not Found"})
                return self._answer(404, {"message": "Not Found"})

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

        return Handler
