"""Identity tokens against a real distribution registry with Bearer token auth.

``docker login`` against a token service that hands out OAuth2 refresh tokens keeps the refresh
token (an *identity token*) instead of the password; a client then trades it for access tokens
with ``POST realm grant_type=refresh_token``. Here the token server (tests/token_server.py)
issues such a token for alice's password, and ``RegistryAuth`` pushes and reads a manifest on a
plain-HTTP distribution registry with nothing but that token.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

from pipeline.config import RegistryConfig
from pipeline.errors import RegistryAuthError
from pipeline.registry import RegistryAuth, RegistryClient, TokenCache
from pipeline.registry._credentials import Credentials
from tests.services import DOCKER_REGISTRY, Registry
from tests.token_server import TokenCall, TokenServer

USERS = {"alice": "alice-secret", "bob": "bob-secret"}
GRANTS = {"bob": {"team/*": ["pull"]}}  # alice and carol: pull and push everywhere
CAROL_TOKEN = "rt-configured-for-carol"  # a refresh token carol got earlier, configured as is
REPO, TAG = "team/app", "1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Pushed(NamedTuple):
    identity_token: str
    digest: str
    raw: bytes
    calls: list[TokenCall]  # what the push asked the token server


@pytest.fixture(scope="module")
def id_token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    server = TokenServer(
        tmp_path_factory.mktemp("identity-token-server"),
        users=USERS,
        grants=GRANTS,
        refresh_tokens={"carol": CAROL_TOKEN},
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def id_registry(tmp_path_factory: pytest.TempPathFactory, id_token_server: TokenServer) -> Iterator[Registry]:
    if not Path(DOCKER_REGISTRY).exists():
        pytest.fail(f"{DOCKER_REGISTRY} is missing: run `bash scripts/install-test-deps.sh` (as root)")
    server = Registry(
        tmp_path_factory.mktemp("identity-token-registry"), tls=False, token_auth=id_token_server.registry_auth()
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def http(id_registry: Registry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=id_registry.url, timeout=10) as client:
        yield client


def _login(server: TokenServer, user: str) -> str:
    """What `docker login` does against an OAuth2 token service: the password grant with
    access_type=offline, keeping the refresh token it answers with."""
    resp = httpx.post(
        server.realm,
        timeout=10,
        data={
            "grant_type": "password",
            "username": user,
            "password": USERS[user],
            "service": server.service,
            "client_id": "docker",
            "access_type": "offline",
        },
    )
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["refresh_token"]
    return token


def _push_blob(http: httpx.Client, auth: RegistryAuth, data: bytes) -> tuple[str, int]:
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    start = http.post(f"/v2/{REPO}/blobs/uploads/", auth=auth)
    assert start.status_code == 202, start.text
    location = start.headers["Location"]  # keeps its _state query: add the digest to it
    done = http.put(
        f"{location}{'&' if '?' in location else '?'}digest={digest}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
        auth=auth,
    )
    assert done.status_code == 201, done.text
    return digest, len(data)


@pytest.fixture(scope="module")
def pushed(id_registry: Registry, id_token_server: TokenServer) -> Pushed:
    """A small OCI image pushed as alice with nothing but her identity token."""
    identity_token = _login(id_token_server, "alice")
    id_token_server.clear_log()
    auth = RegistryAuth(
        id_registry.host, Credentials("", "", identity_token), [f"repository:{REPO}:pull,push"], TokenCache()
    )
    with httpx.Client(base_url=id_registry.url, timeout=10) as http:
        config_digest, config_size = _push_blob(
            http,
            auth,
            json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode(),
        )
        layer_digest, layer_size = _push_blob(http, auth, b"not really a tarball\n")
        raw = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": config_size,
                },
                "layers": [
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}
                ],
            }
        ).encode()
        put = http.put(f"/v2/{REPO}/manifests/{TAG}", content=raw, headers={"Content-Type": OCI_MANIFEST}, auth=auth)
        assert put.status_code == 201, put.text
    digest = f"sha256:{hashlib.sha256(raw).hexdigest()}"
    assert put.headers["Docker-Content-Digest"] == digest
    return Pushed(identity_token, digest, raw, list(id_token_server.calls))


def _read(
    http: httpx.Client, registry: Registry, credentials: Credentials | tuple[str, str], cache: TokenCache | None = None
) -> httpx.Response:
    auth = RegistryAuth(registry.host, credentials, [f"repository:{REPO}:pull"], cache or TokenCache())
    return http.get(f"/v2/{REPO}/manifests/{TAG}", headers={"Accept": OCI_MANIFEST}, auth=auth)


def test_the_push_used_the_refresh_grant_once(pushed: Pushed) -> None:
    """Two blobs and a manifest: one refresh-token POST, its access token cached, no GET."""
    assert pushed.calls == [
        TokenCall("POST", "refresh_token", "alice", (f"repository:{REPO}:pull,push",), "pipeline", 200)
    ]


def test_an_identity_token_reads_the_manifest_back(
    pushed: Pushed, id_registry: Registry, id_token_server: TokenServer, http: httpx.Client
) -> None:
    id_token_server.clear_log()
    cache = TokenCache()
    for _ in range(2):
        resp = _read(http, id_registry, Credentials("", "", pushed.identity_token), cache)
        assert resp.status_code == 200, resp.text
        assert resp.content == pushed.raw
        assert resp.headers["Docker-Content-Digest"] == pushed.digest
    assert id_token_server.calls == [
        TokenCall("POST", "refresh_token", "alice", (f"repository:{REPO}:pull",), "pipeline", 200)
    ], "one refresh-token POST, the access token cached for the second read, never a GET"


def test_a_refresh_token_configured_for_a_user_works(
    pushed: Pushed, id_registry: Registry, id_token_server: TokenServer, http: httpx.Client
) -> None:
    id_token_server.clear_log()
    # Username from auths ("carol:" + identitytoken), as docker login stores it.
    resp = _read(http, id_registry, Credentials("carol", "", CAROL_TOKEN))
    assert resp.status_code == 200 and resp.content == pushed.raw
    assert [(c.method, c.grant_type, c.user) for c in id_token_server.calls] == [("POST", "refresh_token", "carol")]


def test_a_revoked_identity_token_is_refused_without_falling_back(
    pushed: Pushed, id_registry: Registry, id_token_server: TokenServer, http: httpx.Client
) -> None:
    stale = _login(id_token_server, "alice")
    id_token_server.revoke_refresh_token(stale)
    id_token_server.clear_log()
    with pytest.raises(RegistryAuthError) as info:
        _read(http, id_registry, Credentials("", "", stale))
    message = str(info.value)
    assert id_registry.host in message and "invalid_grant" in message
    assert f"docker login {id_registry.host}" in message and stale not in message
    assert [(c.method, c.grant_type, c.status) for c in id_token_server.calls] == [("POST", "refresh_token", 400)], (
        "no GET (anonymous or otherwise) after the refusal"
    )


def test_a_pull_only_identity_token_cannot_push(
    pushed: Pushed, id_registry: Registry, id_token_server: TokenServer, http: httpx.Client
) -> None:
    bob = _login(id_token_server, "bob")
    assert _read(http, id_registry, Credentials("", "", bob)).status_code == 200
    auth = RegistryAuth(id_registry.host, Credentials("", "", bob), [f"repository:{REPO}:pull,push"], TokenCache())
    assert http.post(f"/v2/{REPO}/blobs/uploads/", auth=auth).status_code in (401, 403)


def test_a_password_still_uses_get_with_basic_auth(
    pushed: Pushed, id_registry: Registry, id_token_server: TokenServer, http: httpx.Client
) -> None:
    id_token_server.clear_log()
    resp = _read(http, id_registry, ("alice", USERS["alice"]))  # a tuple, as older callers pass
    assert resp.status_code == 200 and resp.content == pushed.raw
    assert id_token_server.calls == [TokenCall("GET", None, "alice", (f"repository:{REPO}:pull",), None, 200)]


def test_registry_client_reads_the_manifest_with_the_identity_token_docker_login_stored(
    pushed: Pushed, id_registry: Registry, id_token_server: TokenServer, tmp_path: Path
) -> None:
    """Through RegistryClient itself: the token comes from a config.json as `docker login` writes it."""
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {id_registry.host: {"auth": "", "identitytoken": pushed.identity_token}}})
    )
    id_token_server.clear_log()
    config = RegistryConfig(url=id_registry.url, insecure=True, docker_config=tmp_path)
    with RegistryClient(config) as ours:
        manifest = ours.manifest(REPO, TAG)
    assert manifest.digest == pushed.digest and manifest.raw == pushed.raw
    assert {(c.method, c.grant_type) for c in id_token_server.calls} == {("POST", "refresh_token")}
