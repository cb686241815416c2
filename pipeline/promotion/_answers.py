"""One HTTP question and its answer, as the smoke test and the verification after promotion ask
it: what came back (status, the start of the body) or why nothing did, and whether it is the
answer that was expected."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

__all__ = ["Answer", "ask"]

_BODY = 2000  # characters of a body kept to show what was answered


@dataclass(frozen=True)
class Answer:
    """What a URL answered: ``status`` and the start of ``body``, or ``error`` when nothing came."""

    url: str
    status: int | None = None
    body: str = ""
    error: str | None = None

    def passes(self, status: int, contains: str | None) -> bool:
        return self.error is None and self.status == status and (contains is None or contains in self.body)

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.url}: {self.error}"
        body = self.body.strip().replace("\n", " ")
        return f"{self.url} answered {self.status}: {body[:200]!r}"

    def to_dict(self) -> dict[str, object]:
        return {"url": self.url, "status": self.status, "body": self.body[:500], "error": self.error}


def ask(url: str, timeout: float, *, verify: bool = True) -> Answer:
    """GET ``url`` once, following no redirect (what answers is what is checked)."""
    try:
        with httpx.Client(timeout=timeout, verify=verify, follow_redirects=False) as client:
            response = client.get(url, headers={"User-Agent": "pipeline-verify"})
            text = response.content[:_BODY].decode("utf-8", "replace")
            return Answer(url, response.status_code, text)
    except httpx.HTTPError as exc:
        return Answer(url, error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
