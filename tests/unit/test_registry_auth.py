"""Registry auth flows for challenges a real registry here does not send.

httpx.MockTransport stands in for odd or hostile registries only (quoted commas, missing
fields, broken token services); the ordinary basic and token flows run against real
distribution registries in tests/integration.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import httpx
import pytest

from pipeline.errors import RegistryAuthError
from pipeline.registry import RegistryAuth, TokenCache, parse_challenge
from pipeline.registry._credentials import Credentials


def test_parse_challenge_handles_quotes_commas_and_case() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:team/app:pull,push repository:team/base:pull"'
    )
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:team/app:pull,push repository:team/base:pull",
    }
    assert parse_challenge('Basic realm="x"').scheme == "basic"
    assert parse_challenge("").scheme == ""


def _registry(token_answers: list[httpx.Response], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/token":
            return token_answers.pop(0)
        if request.headers.get("authorization", "").startswith("Bearer good"):
            return httpx.Response(200, json={})
        return httpx.Response(
            401,
            headers={
                "WWW-Authenticate": 'Bearer realm="https://auth.test/token",service="reg.test",scope="ignored:x:pull"'
            },
        )

    return httpx.MockTransport(handle)


def test_bearer_token_is_fetched_once_per_scope_set_and_reused() -> None:
    seen: list[httpx.Request] = []
    answers = [
        httpx.Response(200, json={"token": "good-1", "expires_in": 300}),
        httpx.Response(200, json={"access_token": "good-2"}),
    ]
    cache = TokenCache()
    with httpx.Client(transport=_registry(answers, seen), base_url="https://reg.test") as client:
        pull = RegistryAuth("reg.test", ("u", "p"), ["repository:a:pull"], cache)
        assert client.get("/v2/a/manifests/1", auth=pull).status_code == 200
        assert client.get("/v2/a/manifests/2", auth=pull).status_code == 200
        both = RegistryAuth("reg.test", ("u", "p"), ["repository:a:pull", "repository:b:pull,push"], cache)
        assert client.get("/v2/b/blobs/uploads/", auth=both).status_code == 200
    tokens = [r for r in seen if r.url.path == "/token"]
    assert len(tokens) == 2, "a token must be cached per scope set, and a new set needs a new token"
    assert tokens[0].url.params.get_list("scope") == ["repository:a:pull"]
    assert tokens[1].url.params.get_list("scope") == ["repository:a:pull", "repository:b:pull,push"]
    assert tokens[1].url.params["service"] == "reg.test"
    assert tokens[0].headers["authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (httpx.Response(401), "token service refused as u"),
        (httpx.Response(500), "token service answered 500"),
        (httpx.Response(200, content=b"<html>"), "no usable JSON"),
        (httpx.Response(200, content=json.dumps({"token": ""}).encode()), "sent no token"),
    ],
)
def test_broken_token_services_are_clear_errors(answer: httpx.Response, words: str) -> None:
    with (
        httpx.Client(transport=_registry([answer], []), base_url="https://reg.test") as client,
        pytest.raises(Exception, match=words) as info,
    ):
        client.get("/v2/", auth=RegistryAuth("reg.test", ("u", "p"), ["repository:a:pull"], TokenCache()))
    assert "u" in str(info.value) or "reg.test" in str(info.value)


def test_refused_basic_credentials_raise_auth_error() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="reg"'})

    with (
        httpx.Client(transport=httpx.MockTransport(handle), base_url="https://reg.test") as client,
        pytest.raises(RegistryAuthError, match="refused the password of u"),
    ):
        client.get("/v2/", auth=RegistryAuth("reg.test", ("u", "p"), [], TokenCache()))


# -- identity tokens (OAuth2 refresh tokens) -------------------------------------------------

TOKEN = "refresh-0123456789abcdef"


def _form(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode(), keep_blank_values=True)


def test_an_identity_token_is_exchanged_with_an_oauth2_post() -> None:
    seen: list[httpx.Request] = []
    answers = [httpx.Response(200, json={"access_token": "good-1", "expires_in": 300, "scope": "repository:a:pull"})]
    cache = TokenCache()
    credentials = Credentials("", "", TOKEN)
    with httpx.Client(transport=_registry(answers, seen), base_url="https://reg.test") as client:
        auth = RegistryAuth("reg.test", credentials, ["repository:b:pull,push", "repository:a:pull"], cache)
        assert client.get("/v2/a/manifests/1", auth=auth).status_code == 200
        assert client.get("/v2/a/manifests/2", auth=auth).status_code == 200  # cached
    tokens = [r for r in seen if r.url.path == "/token"]
    assert len(tokens) == 1
    post = tokens[0]
    assert post.method == "POST" and not post.url.query
    assert post.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in post.headers, "the refresh token goes in the form only"
    assert _form(post) == {
        "grant_type": ["refresh_token"],
        "refresh_token": [TOKEN],
        "client_id": ["pipeline"],
        "service": ["reg.test"],
        "scope": ["repository:a:pull repository:b:pull,push"],
    }
    assert seen[-1].headers["authorization"] == "Bearer good-1"


def test_an_identity_token_with_a_username_still_uses_the_refresh_grant() -> None:
    # What `docker login` leaves in auths: "user:" plus identitytoken.
    seen: list[httpx.Request] = []
    answers = [httpx.Response(200, json={"access_token": "good-1"})]
    with httpx.Client(transport=_registry(answers, seen), base_url="https://reg.test") as client:
        auth = RegistryAuth("reg.test", Credentials("alice", "", TOKEN), [], TokenCache())
        assert client.get("/v2/", auth=auth).status_code == 200
    (post,) = [r for r in seen if r.url.path == "/token"]
    form = _form(post)
    assert post.method == "POST" and form["grant_type"] == ["refresh_token"]
    assert form["scope"] == ["ignored:x:pull"], "without scopes of our own, the challenge's"
    assert "username" not in form and "password" not in form


def test_a_password_keeps_using_get_with_basic_auth() -> None:
    seen: list[httpx.Request] = []
    answers = [httpx.Response(200, json={"token": "good-1"})]
    with httpx.Client(transport=_registry(answers, seen), base_url="https://reg.test") as client:
        auth = RegistryAuth("reg.test", Credentials("u", "p"), ["repository:a:pull"], TokenCache())
        assert client.get("/v2/a/manifests/1", auth=auth).status_code == 200
    (get,) = [r for r in seen if r.url.path == "/token"]
    assert get.method == "GET" and get.url.params.get_list("scope") == ["repository:a:pull"]
    assert get.headers["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (
            httpx.Response(400, json={"error": "invalid_grant", "error_description": TOKEN}),
            r"refused the identity token for repository:a:pull \(400: invalid_grant\)",
        ),
        (httpx.Response(401, json={}), r"refused the identity token .*\(401\)"),
        (httpx.Response(403), r"refused the identity token .*\(403\)"),
    ],
)
def test_a_refused_identity_token_is_an_auth_error_without_the_token(answer: httpx.Response, words: str) -> None:
    seen: list[httpx.Request] = []
    with (
        httpx.Client(transport=_registry([answer], seen), base_url="https://reg.test") as client,
        pytest.raises(RegistryAuthError, match=words) as info,
    ):
        client.get(
            "/v2/", auth=RegistryAuth("reg.test", Credentials("", "", TOKEN), ["repository:a:pull"], TokenCache())
        )
    assert TOKEN not in str(info.value) and "docker login reg.test" in str(info.value)
    assert [r.method for r in seen if r.url.path == "/token"] == ["POST"], "no fallback to GET"


def test_a_basic_challenge_with_only_an_identity_token_is_a_clear_error() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="reg"'})

    with (
        httpx.Client(transport=httpx.MockTransport(handle), base_url="https://reg.test") as client,
        pytest.raises(RegistryAuthError, match="identity token.*Bearer") as info,
    ):
        client.get("/v2/", auth=RegistryAuth("reg.test", Credentials("", "", TOKEN), [], TokenCache()))
    assert TOKEN not in str(info.value)
    assert len(seen) == 1 and "authorization" not in seen[0].headers
