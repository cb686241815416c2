"""One class per Git host: how its deliveries look, how they are signed, what a push says.

Field names follow the hosts' documentation (see shared/WEBHOOKS.md). ``PROVIDERS`` lists every
provider explicitly; adding a host is one class and one line here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar

from pipeline.errors import BadPayload
from pipeline.intake._event import ZERO_SHA, Delivery, PushEvent, changed_paths, validate_ref, validate_sha
from pipeline.intake._json import decode_body, header, obj, text
from pipeline.intake._signatures import require_hmac, require_token
from pipeline.types import GIT_HOSTS

__all__ = ["PROVIDERS", "Provider"]

Headers = Mapping[str, str]


class Provider:
    """Base: subclasses say how to parse, verify and read pushes."""

    name: ClassVar[str]

    def parse(self, headers: Headers, body: bytes) -> Delivery:
        raise NotImplementedError

    def verify(self, delivery: Delivery, headers: Headers, body: bytes, secret: bytes) -> None:
        raise NotImplementedError

    def pushes(self, delivery: Delivery) -> list[PushEvent]:
        raise NotImplementedError


def _urls(*values: object) -> tuple[str, ...]:
    return tuple(v for v in values if isinstance(v, str) and v)


def _commit_message(commit: object) -> str:
    return text(obj(commit).get("message")) or ""


def _peeled(ref: str, after: str, commit: object) -> tuple[str, str | None]:
    """The commit to build and the tag object: an annotated tag's ``after`` is the tag object,
    and the host names the commit it points at separately (GitHub ``head_commit.id``, GitLab
    ``checkout_sha``)."""
    if ref.startswith("refs/tags/") and isinstance(commit, str) and commit != after and after != ZERO_SHA:
        return validate_sha(commit, "the tag's commit"), after
    return after, None


def _github_style_push(p: dict[str, Any], complete: bool) -> PushEvent:
    """GitHub's push body, which Gitea and Forgejo copy: ref, before, after, head_commit, commits."""
    ref = validate_ref(p.get("ref"))
    after, tag_object = _peeled(ref, validate_sha(p.get("after"), "after"), obj(p.get("head_commit")).get("id"))
    return PushEvent(
        ref,
        validate_sha(p.get("before"), "before"),
        after,
        _commit_message(p.get("head_commit")),
        changed_paths(p.get("commits"), complete),
        tag_object,
    )


class GitHub(Provider):
    name = "github"

    def parse(self, headers: Headers, body: bytes) -> Delivery:
        event = header(headers, "X-GitHub-Event", "GitHub")
        delivery_id = header(headers, "X-GitHub-Delivery", "GitHub")
        payload, _ = decode_body(headers, body, form=True)
        repo = obj(payload.get("repository"))
        kind = {"push": "push", "ping": "ping"}.get(event, "other")
        return Delivery(
            self.name,
            event,
            kind,
            delivery_id,
            headers.get("x-github-hook-id", ""),
            _urls(repo.get("clone_url"), repo.get("ssh_url"), repo.get("html_url"), repo.get("git_url")),
            text(repo.get("full_name")),
            payload,
            body,
        )

    def verify(self, delivery: Delivery, headers: Headers, body: bytes, secret: bytes) -> None:
        require_hmac(headers, ("X-Hub-Signature-256",), body, secret, prefix="sha256=")

    def pushes(self, delivery: Delivery) -> list[PushEvent]:
        commits = delivery.payload.get("commits")
        # GitHub lists at most 2048 commits and none for a new branch: only a real list counts
        return [_github_style_push(delivery.payload, isinstance(commits, list) and 0 < len(commits) < 2048)]


class GitLab(Provider):
    """Project hooks and system hooks: one push reaches both with equal bytes and one event id,
    so the id is scoped by the hook kind (the second delivery coalesces with the first's build)."""

    name = "gitlab"
    _EVENTS: ClassVar[dict[str, str]] = {"Push Hook": "push", "Tag Push Hook": "push"}
    _SYSTEM_PUSHES = ("push", "tag_push")

    def parse(self, headers: Headers, body: bytes) -> Delivery:
        event = header(headers, "X-Gitlab-Event", "GitLab")
        delivery_id = (
            headers.get("idempotency-key")
            or headers.get("x-gitlab-event-uuid")
            or header(headers, "X-Gitlab-Event-UUID", "GitLab")
        )
        payload, _ = decode_body(headers, body, form=False)
        project = obj(payload.get("project"))
        system = event == "System Hook"
        if system:
            kind = "push" if payload.get("event_name") in self._SYSTEM_PUSHES else "other"
        else:
            kind = self._EVENTS.get(event, "other")
        return Delivery(
            self.name,
            event,
            kind,
            delivery_id,
            "system" if system else "project",
            _urls(project.get("git_http_url"), project.get("git_ssh_url"), project.get("web_url")),
            text(project.get("path_with_namespace")),
            payload,
            body,
        )

    def verify(self, delivery: Delivery, headers: Headers, body: bytes, secret: bytes) -> None:
        require_token(headers, "X-Gitlab-Token", secret)

    def pushes(self, delivery: Delivery) -> list[PushEvent]:
        p = delivery.payload
        after = validate_sha(p.get("after"), "after")
        listed = p.get("commits")
        commits = listed if isinstance(listed, list) else []
        ref = validate_ref(p.get("ref"))
        after, tag_object = _peeled(ref, after, p.get("checkout_sha"))
        head = next((c for c in commits if obj(c).get("id") == after), None)
        total = p.get("total_commits_count")
        complete = isinstance(total, int) and total == len(commits)  # GitLab lists at most 20
        return [
            PushEvent(
                ref,
                validate_sha(p.get("before"), "before"),
                after,
                _commit_message(head),
                changed_paths(commits, complete),
                tag_object,
            )
        ]


class Gitea(Provider):
    """Gitea and Forgejo (and Gogs headers): GitHub-like body, bare-hex HMAC over the JSON."""

    name = "gitea"
    _PREFIXES = ("X-Gitea", "X-Forgejo", "X-Gogs")

    def _first(self, headers: Headers, suffix: str) -> str:
        for prefix in self._PREFIXES:
            if value := headers.get(f"{prefix}-{suffix}".lower()):
                return value
        raise BadPayload(f"missing header X-Gitea-{suffix}: is this a Gitea or Forgejo webhook?")

    def parse(self, headers: Headers, body: bytes) -> Delivery:
        event = self._first(headers, "Event")
        delivery_id = self._first(headers, "Delivery")
        payload, signed = decode_body(headers, body, form=True)
        repo = obj(payload.get("repository"))
        return Delivery(
            self.name,
            event,
            "push" if event == "push" else "other",
            delivery_id,
            "",
            _urls(repo.get("clone_url"), repo.get("ssh_url"), repo.get("html_url")),
            text(repo.get("full_name")),
            payload,
            signed,
        )

    def verify(self, delivery: Delivery, headers: Headers, body: bytes, secret: bytes) -> None:
        names = tuple(f"{prefix}-Signature" for prefix in self._PREFIXES)
        require_hmac(headers, names, delivery.signed_body, secret)

    def pushes(self, delivery: Delivery) -> list[PushEvent]:
        commits, total = delivery.payload.get("commits"), delivery.payload.get("total_commits")
        complete = isinstance(commits, list) and isinstance(total, int) and total == len(commits)
        return [_github_style_push(delivery.payload, complete)]


class Bitbucket(Provider):
    """Bitbucket Cloud: no clone URL, several ref changes per push, no file lists."""

    name = "bitbucket"

    def parse(self, headers: Headers, body: bytes) -> Delivery:
        event = header(headers, "X-Event-Key", "Bitbucket")
        delivery_id = header(headers, "X-Request-UUID", "Bitbucket")
        payload, _ = decode_body(headers, body, form=False)
        repo = obj(payload.get("repository"))
        links = obj(repo.get("links"))
        return Delivery(
            self.name,
            event,
            "push" if event == "repo:push" else "other",
            delivery_id,
            headers.get("x-hook-uuid", ""),
            _urls(obj(links.get("html")).get("href")),
            text(repo.get("full_name")),
            payload,
            body,
        )

    def verify(self, delivery: Delivery, headers: Headers, body: bytes, secret: bytes) -> None:
        require_hmac(headers, ("X-Hub-Signature",), body, secret, prefix="sha256=")

    def pushes(self, delivery: Delivery) -> list[PushEvent]:
        changes = obj(delivery.payload.get("push")).get("changes")
        if not isinstance(changes, list):
            raise BadPayload("push.changes must be a list")
        return [self._change(obj(change)) for change in changes]

    @staticmethod
    def _change(change: dict[str, Any]) -> PushEvent:
        new, old = obj(change.get("new")), obj(change.get("old"))
        side = new or old
        kind = {"branch": "heads", "tag": "tags", "named_branch": "heads"}.get(str(side.get("type")))
        if kind is None or not isinstance(side.get("name"), str):
            raise BadPayload("push.changes[].new/old must name a branch or tag")
        ref = validate_ref(f"refs/{kind}/{side['name']}")
        before = validate_sha(obj(old.get("target")).get("hash"), "old.target.hash") if old else "0" * 40
        after = validate_sha(obj(new.get("target")).get("hash"), "new.target.hash") if new else "0" * 40
        return PushEvent(ref, before, after, _commit_message(new.get("target")), None)


class BitbucketServer(Provider):
    """Bitbucket Data Center / Server: ``repo:refs_changed`` with several ``changes`` per push,
    ``diagnostics:ping`` from "Test connection", ``X-Hub-Signature: sha256=`` over the body."""

    name = "bitbucket-server"

    def parse(self, headers: Headers, body: bytes) -> Delivery:
        event = header(headers, "X-Event-Key", "Bitbucket Data Center")
        delivery_id = header(headers, "X-Request-Id", "Bitbucket Data Center")
        payload, _ = decode_body(headers, body, form=False)
        repo = obj(payload.get("repository"))
        links = obj(repo.get("links"))
        clone = links.get("clone")
        urls = [obj(link).get("href") for link in clone] if isinstance(clone, list) else []
        key, slug = text(obj(repo.get("project")).get("key")), text(repo.get("slug"))
        kind = {"repo:refs_changed": "push", "diagnostics:ping": "ping"}.get(event, "other")
        return Delivery(
            self.name,
            event,
            kind,
            delivery_id,
            "",
            _urls(*urls),
            f"{key}/{slug}" if key and slug else None,
            payload,
            body,
        )

    def verify(self, delivery: Delivery, headers: Headers, body: bytes, secret: bytes) -> None:
        require_hmac(headers, ("X-Hub-Signature",), body, secret, prefix="sha256=")

    def pushes(self, delivery: Delivery) -> list[PushEvent]:
        changes = delivery.payload.get("changes")
        if not isinstance(changes, list):
            raise BadPayload("changes must be a list")
        return [self._change(obj(change)) for change in changes]

    @staticmethod
    def _change(change: dict[str, Any]) -> PushEvent:
        ref = validate_ref(change.get("refId") or obj(change.get("ref")).get("id"))
        before = validate_sha(change.get("fromHash"), "changes[].fromHash")
        after = validate_sha(change.get("toHash"), "changes[].toHash")
        return PushEvent(ref, before, after, "", None)


class Generic(Provider):
    """Any other sender: ``{"repository", "ref", "after"}`` signed like GitHub (README)."""

    name = "generic"

    def parse(self, headers: Headers, body: bytes) -> Delivery:
        payload, _ = decode_body(headers, body, form=False)
        repository = payload.get("repository")
        if not isinstance(repository, str) or not repository:
            raise BadPayload("'repository' must be the repository's URL or owner/name")
        given = headers.get("x-pipeline-delivery")
        delivery_id = given or hashlib.sha256(body).hexdigest()
        urls = (repository,) if ("/" in repository and ":" in repository) else ()
        return Delivery(
            self.name, "push", "push", delivery_id, "", urls, repository.strip("/"), payload, body, bool(given)
        )

    def verify(self, delivery: Delivery, headers: Headers, body: bytes, secret: bytes) -> None:
        require_hmac(headers, ("X-Pipeline-Signature",), body, secret, prefix="sha256=")

    def pushes(self, delivery: Delivery) -> list[PushEvent]:
        p = delivery.payload
        paths = p.get("changed_paths")
        return [
            PushEvent(
                validate_ref(p.get("ref")),
                validate_sha(p.get("before", "0" * 40), "before"),
                validate_sha(p.get("after"), "after"),
                text(p.get("message")) or "",
                tuple(str(x) for x in paths) if isinstance(paths, list) else None,
            )
        ]


PROVIDERS: dict[str, Provider] = {
    p.name: p for p in (GitHub(), GitLab(), Gitea(), Bitbucket(), BitbucketServer(), Generic())
}
assert set(PROVIDERS) >= {*GIT_HOSTS, "generic"}, "every Git host kind has its webhook reader"
