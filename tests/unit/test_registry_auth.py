"""Registry auth flows for challenges a real registry here does not send.

httpx.MockTransport stands in for odd or hostile registries only (quoted commas, missing
fields, broken token services); the ordinary basic and token flows run against real
distribution registries in tests/integration.
"""

from __future__ import annotations

import json

import httpx
import pytest

from pipeline.errors import RegistryAuthError
from pipeline.registry import RegistryAuth, TokenCache, parse_challenge


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
        return httpx.Response(401, headers={
            "WWW-Authenticate": 'Bearer realm="https://auth.test/token",service="reg.test",scope="ignored:x:pull"'})
    return httpx.MockTransport(handle)


def test_bearer_token_is_fetched_once_per_scope_set_and_reused() -> None:
    seen: list[httpx.Request] = []
    answers = [httpx.Response(200, json={"token": "good-1", "expires_in": 300}),
               httpx.Response(200, json={"access_token": "good-2"})]
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
    with httpx.Client(transport=_registry([answer], []), base_url="https://reg.test") as client:
        with pytest.raises(Exception, match=words) as info:
            client.get("/v2/", auth=RegistryAuth("reg.test", ("u", "p"), ["repository:a:pull"], TokenCache()))
    assert "u" in str(info.value) or "reg.test" in str(info.value)


def test_refused_basic_credentials_raise_auth_error() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="reg"'})
    with httpx.Client(transport=httpx.MockTransport(handle), base_url="https://reg.test") as client:
        with pytest.raises(RegistryAuthError, match="refused the password of u"):
            client.get("/v2/", auth=RegistryAuth("reg.test", ("u", "p"), [], TokenCache()))
