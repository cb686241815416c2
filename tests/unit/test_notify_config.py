"""The ``status:`` and ``notifications:`` config keys: bad values are refused at start with the
key's path, and the pure pieces of delivery (repository paths, ``Retry-After``, origin checks)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pipeline.config import parse_config
from pipeline.errors import ConfigError, DeliveryError
from pipeline.notify._hosts import repository_path
from pipeline.notify._http import Request, Sender, retry_after_seconds, send


def _config(status: dict[str, Any] | None = None, **notifications: Any) -> Any:
    project: dict[str, Any] = {"repo": "https://github.com/acme/app.git", "image": {"registry": "r", "repository": "a"}}
    if status is not None:
        project["status"] = status
    return parse_config(
        {"registries": {"r": {"url": "r.example"}}, "projects": {"app": project}, "notifications": notifications}
    )


@pytest.mark.parametrize(
    ("status", "notifications", "said"),
    [
        ({"provider": "sourcehut", "token_env": "T"}, {}, "projects.app.status.provider"),
        ({"token_env": "T", "api_url": "ftp://git.example"}, {}, "api_url must be an absolute http:// or https:// URL"),
        ({"token_env": "T", "api_url": "https://u:p@git.example"}, {}, "no query, fragment or credentials"),
        ({"provider": "github"}, {}, "projects.app.status.token_env: Field required"),
        ({"token_env": "T", "contxt": "x"}, {}, "projects.app.status.contxt: unknown key"),
        (
            None,
            {"targets": [{"name": "a", "kind": "webhook", "url": "https://h.example/x", "events": ["build.done"]}]},
            "unknown events ['build.done']",
        ),
        (None, {"targets": [{"name": "a", "kind": "webhook"}]}, "a webhook target needs url"),
        (
            None,
            {"targets": [{"name": "a", "kind": "slack", "url": "https://hooks.slack.com/x"}]},
            "a slack target needs url_env",
        ),
        (None, {"targets": [{"name": "a", "kind": "sms", "url": "https://h.example"}]}, "notifications.targets.0.kind"),
        (None, {"targets": [{"name": "a", "kind": "slack", "url_env": "S"}] * 2}, "targets ['a'] are defined twice"),
        (None, {"max_attempts": 0}, "notifications.max_attempts"),
        (None, {"base_url": "pipeline.example.com"}, "base_url must be an absolute"),
    ],
)
def test_bad_values_name_their_key(status: dict[str, Any] | None, notifications: dict[str, Any], said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(status, **notifications)
    assert said in caught.value.message


def test_defaults_and_filters() -> None:
    config = _config(
        {"token_env": "T"}, targets=[{"name": "prod", "kind": "slack", "url_env": "S", "environments": ["prod*"]}]
    )
    status = config.project("app").status
    assert (status.provider, status.api_url, status.context, status.deployments) == (None, None, "pipeline/build", True)
    target = config.notifications.targets[0]
    assert target.allowed_hosts == ["hooks.slack.com"]
    assert target.wants("promotion.failed", "app", "prod-eu") and not target.wants("promotion.failed", "app", "dev")
    assert not target.wants("build.failed", "app", None)  # an environment filter leaves the builds out


def test_a_missing_slack_url_or_token_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config({"token_env": "NO_SUCH_TOKEN"}, targets=[{"name": "c", "kind": "slack", "url_env": "NO_SUCH_URL"}])
    monkeypatch.delenv("NO_SUCH_URL", raising=False)
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="notifications.targets.c.url_env: the environment variable NO_SUCH_URL"):
        config.notifications.targets[0].slack_url()
    with pytest.raises(ConfigError, match="projects.app.status.token_env: the environment variable NO_SUCH_TOKEN"):
        config.project("app").status.token("projects.app")


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("https://github.com/acme/app.git", "acme/app"),
        ("git@gitlab.example.com:group/sub/app.git", "group/sub/app"),
        ("ssh://git@bitbucket.org/team/app", "team/app"),
        ("/srv/git/app.git", None),
    ],
)
def test_repository_paths_from_clone_urls(url: str, path: str | None) -> None:
    assert repository_path(url) == path


def test_retry_after_as_seconds_or_a_date_capped() -> None:
    def answer(value: str) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value})

    assert retry_after_seconds(answer("7"), cap=60) == 7
    assert retry_after_seconds(answer("86400"), cap=60) == 60  # a hostile value cannot stall the queue
    assert retry_after_seconds(answer("Wed, 21 Oct 2015 07:28:00 GMT"), cap=60) == 0  # in the past: now
    assert retry_after_seconds(answer("soon"), cap=60) is None


def test_a_url_off_the_configured_origin_is_never_sent() -> None:
    for url in ("https://api.github.com.evil.example/x", "http://api.github.com/x", "https://api.github.comx/y"):
        request = Request("POST", "https://api.github.com", url, b"{}", {}, "GitHub commit status")
        with pytest.raises(DeliveryError, match="refusing a URL outside https://api.github.com") as caught:
            send(Sender(1.0), request, max_retry_after=1)
        assert not caught.value.retryable
    enterprise = Request("POST", "https://ghe.example/api/v3", "https://ghe.example/api/v3x/repos", b"", {}, "GHE")
    with pytest.raises(DeliveryError, match="refusing"):
        send(Sender(1.0), enterprise, max_retry_after=1)
