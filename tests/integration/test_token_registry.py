"""The Bearer-token flow of public registries (Docker Hub, GHCR, Quay), for real: a TLS
distribution registry with `auth: token` trusting tests/token_server.py, used by docker, skopeo
and plain HTTP requests; BuildKit goes through the same flow to a plain-HTTP twin (see its test)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.config import RegistryConfig
from pipeline.errors import RegistryAuthError
from pipeline.registry import RegistryClient
from tests.conftest import TOKEN_USERS as USERS
from tests.services import DockerEngine, Registry, skopeo_inspect
from tests.token_server import TokenRequest, TokenServer, parse_scope

pytestmark = pytest.mark.both_registries  # distribution 2.8 and 3

IMAGE = "team/busybox:1"


class Pushed(NamedTuple):
    ref: str
    digest: str
    requests: list[TokenRequest]  # what the push asked the token server for


@pytest.fixture(scope="session")
def alice_config(tmp_path_factory: pytest.TempPathFactory, engine: DockerEngine, token_registry: Registry) -> Path:
    """A DOCKER_CONFIG dir where `docker login` stored alice's credentials."""
    config = tmp_path_factory.mktemp("alice-docker-config")
    engine.login(token_registry.host, "alice", USERS["alice"], config)
    return config


@pytest.fixture(scope="session")
def pushed(
    engine: DockerEngine, base_image: str, token_registry: Registry, token_server: TokenServer, alice_config: Path
) -> Pushed:
    """busybox pushed by docker as alice."""
    ref = f"{token_registry.host}/{IMAGE}"
    engine.docker("tag", base_image, ref)
    before = len(token_server.requests)
    out = engine.docker("push", ref, docker_config=alice_config).stdout.decode()
    match = re.search(r"digest: (sha256:[0-9a-f]{64})", out)
    assert match, out
    return Pushed(ref, match.group(1), list(token_server.requests[before:]))


@pytest.fixture
def client(token_registry: Registry) -> Iterator[httpx.Client]:
    context = token_registry.ssl_context()
    assert context is not None  # a TLS registry
    with httpx.Client(base_url=token_registry.url, verify=context, timeout=10) as http:
        yield http


def _token(server: TokenServer, *scopes: str, user: str = "alice") -> str:
    resp = httpx.get(
        server.realm, params={"service": server.service, "scope": list(scopes)}, auth=(user, USERS[user]), timeout=10
    )
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["token"]
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="..."` -> ("Bearer", {"realm": ..., "service": ...})."""
    scheme, _, rest = header.partition(" ")
    return scheme, dict(re.findall(r'(\w+)="([^"]*)"', rest))


def _push_blob(client: httpx.Client, repo: str, token: str, data: bytes) -> str:
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    start = client.post(f"/v2/{repo}/blobs/uploads/", headers=_bearer(token))
    assert start.status_code == 202, start.text
    location = start.headers["Location"]  # keeps its _state query: add digest to it
    done = client.put(
        f"{location}{'&' if '?' in location else '?'}digest={digest}",
        content=data,
        headers={**_bearer(token), "Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 201, done.text
    return digest


# -- real clients -------------------------------------------------------------------------


def test_docker_login_and_push_go_through_the_token_server(pushed: Pushed, token_server: TokenServer) -> None:
    assert pushed.digest.startswith("sha256:")
    # `docker login` asks for a token without scope, to check the credentials.
    assert ("alice", ()) in token_server.requests
    assert pushed.requests, "docker pushed without asking the token server"
    assert all(user == "alice" for user, _ in pushed.requests)
    asked = [parse_scope(s) for _, scopes in pushed.requests for s in scopes]
    assert any(s.name == "team/busybox" and set(s.actions) == {"pull", "push"} for s in asked)


def test_skopeo_reads_the_pushed_image_with_credentials(
    pushed: Pushed, token_registry: Registry, token_server: TokenServer
) -> None:
    ref, digest, _ = pushed
    before = len(token_server.requests)
    seen = skopeo_inspect(ref, tls_verify=True, cert_dir=token_registry.cert_dir, creds=f"alice:{USERS['alice']}")
    assert seen["Digest"] == digest
    assert ("alice", ("repository:team/busybox:pull",)) in token_server.requests[before:]


def test_a_wrong_password_fails_for_docker_login_and_skopeo(
    pushed: Pushed, engine: DockerEngine, token_registry: Registry, token_server: TokenServer, tmp_path: Path
) -> None:
    ref = pushed[0]
    rejected = len(token_server.rejected)
    config = tmp_path / "docker-config"
    with pytest.raises(RuntimeError, match="(?i)unauthorized|denied|401"):
        engine.login(token_registry.host, "alice", "wrong", config)
    stored = json.loads((config / "config.json").read_text()) if (config / "config.json").exists() else {}
    assert token_registry.host not in stored.get("auths", {})  # nothing kept for a failed login
    with pytest.raises(RuntimeError, match="(?i)unauthorized|authentication required|401"):
        skopeo_inspect(ref, tls_verify=True, cert_dir=token_registry.cert_dir, creds="alice:wrong")
    with pytest.raises(RuntimeError, match="(?i)unauthorized|authentication required|401"):
        skopeo_inspect(ref, tls_verify=True, cert_dir=token_registry.cert_dir)  # no creds
    new = token_server.rejected[rejected:]
    assert [user for user, _ in new].count("alice") >= 2 and None in [user for user, _ in new]


def test_a_pull_only_user_can_read_but_docker_push_is_denied(
    pushed: Pushed, engine: DockerEngine, token_registry: Registry, token_server: TokenServer, tmp_path: Path
) -> None:
    ref, digest, _ = pushed
    seen = skopeo_inspect(ref, tls_verify=True, cert_dir=token_registry.cert_dir, creds=f"bob:{USERS['bob']}")
    assert seen["Digest"] == digest
    config = tmp_path / "bob-docker-config"
    engine.login(token_registry.host, "bob", USERS["bob"], config)
    other = f"{token_registry.host}/team/bob-was-here:1"
    engine.docker("tag", ref, other)
    with pytest.raises(RuntimeError, match="(?i)denied|unauthorized|authentication required"):
        engine.push(other, docker_config=config)


def test_buildkit_builds_from_a_base_behind_the_token_flow(
    engine: DockerEngine, base_image: str, http_token_registry: Registry, token_server: TokenServer, tmp_path: Path
) -> None:
    """The builder's real case: `FROM` a private registry that wants Bearer tokens. Plain HTTP:
    the engine's built-in BuildKit (Docker 20.10) speaks HTTP to any 127.x registry, so it
    gets 400 from a TLS one whatever the auth."""
    base = f"{http_token_registry.host}/team/base:1"
    engine.docker("tag", base_image, base)
    config = tmp_path / "docker-config"
    engine.login(http_token_registry.host, "alice", USERS["alice"], config)
    engine.push(base, docker_config=config)
    engine.docker("rmi", base)  # or BuildKit would take it from the local image store
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text(f"FROM {base}\nLABEL token-flow=yes\n")
    build = ("build", "--progress=plain", "--network", "host", "-t", "token-flow:built", str(tmp_path / "ctx"))
    with pytest.raises(RuntimeError, match="(?i)unauthorized|authentication required|401"):
        engine.docker(*build, docker_config=tmp_path / "no-credentials")
    before = len(token_server.requests)
    engine.docker(*build, docker_config=config)
    labels = json.loads(
        engine.docker("image", "inspect", "--format", "{{json .Config.Labels}}", "token-flow:built").stdout
    )
    assert labels == {"token-flow": "yes"}
    assert ("alice", ("repository:team/base:pull",)) in token_server.requests[before:]


# -- the protocol, over plain HTTP ---------------------------------------------------------


def test_v2_without_a_token_is_a_bearer_challenge(client: httpx.Client, token_server: TokenServer) -> None:
    resp = client.get("/v2/")
    assert resp.status_code == 401
    scheme, params = _challenge(resp.headers["WWW-Authenticate"])
    assert scheme == "Bearer"
    assert params == {"realm": token_server.realm, "service": token_server.service}
    # Follow the challenge as a client does: a token with no scope opens /v2/ itself.
    answer = httpx.get(
        params["realm"], params={"service": params["service"]}, auth=("alice", USERS["alice"]), timeout=10
    )
    assert answer.status_code == 200
    assert client.get("/v2/", headers=_bearer(answer.json()["token"])).status_code == 200


def test_the_token_is_an_es256_jwt_the_registry_can_trust(token_server: TokenServer) -> None:
    resp = httpx.get(
        token_server.realm,
        params={"service": token_server.service, "scope": ["repository:team/app:pull,push", "repository:x:pull"]},
        auth=("alice", USERS["alice"]),
        timeout=10,
    )
    body = resp.json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
    assert body["token"] == body["access_token"] and body["expires_in"] == 300
    header = jwt.get_unverified_header(body["token"])
    # kid: the libtrust fingerprint of the key in the registry's rootcertbundle.
    cert = x509.load_pem_x509_certificate(Path(token_server.rootcertbundle).read_bytes())
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode()
    assert header == {"alg": "ES256", "typ": "JWT", "kid": ":".join(b32[i : i + 4] for i in range(0, 48, 4))}
    claims = jwt.decode(
        body["token"], key, algorithms=["ES256"], audience=token_server.service, issuer=token_server.issuer
    )
    assert claims["sub"] == "alice" and claims["jti"]
    assert claims["nbf"] == claims["iat"] and claims["exp"] == claims["iat"] + 300
    assert claims["access"] == [
        {"type": "repository", "name": "team/app", "actions": ["pull", "push"]},
        {"type": "repository", "name": "x", "actions": ["pull"]},
    ]


def test_the_granted_actions_are_what_was_asked_and_allowed(token_server: TokenServer) -> None:
    bob = token_server.decode(
        _token(token_server, "repository:team/app:pull,push", "repository:elsewhere:pull", user="bob")
    )
    assert bob["access"] == [
        {"type": "repository", "name": "team/app", "actions": ["pull"]},
        {"type": "repository", "name": "elsewhere", "actions": []},
    ]
    catalog = token_server.decode(_token(token_server, "registry:catalog:*"))
    assert catalog["access"] == [{"type": "registry", "name": "catalog", "actions": []}]


def test_a_pull_token_cannot_push(client: httpx.Client, token_server: TokenServer) -> None:
    token = _token(token_server, "repository:x:pull")
    assert client.get("/v2/x/tags/list", headers=_bearer(token)).status_code == 404  # allowed
    upload = client.post("/v2/x/blobs/uploads/", headers=_bearer(token))
    assert upload.status_code in (401, 403)
    _, params = _challenge(upload.headers["WWW-Authenticate"])
    kind, name, actions = params["scope"].split(":")  # distribution lists the actions in no fixed order
    assert (kind, name, set(actions.split(","))) == ("repository", "x", {"pull", "push"})
    assert params["error"] == "insufficient_scope"
    manifest = client.put("/v2/x/manifests/1", headers=_bearer(token), content=b"{}")
    assert manifest.status_code in (401, 403)


def test_one_token_for_two_scopes_mounts_a_blob_across_repositories(
    client: httpx.Client, token_server: TokenServer
) -> None:
    data = b"layer bytes to share between two repositories\n"
    digest = _push_blob(client, "a", _token(token_server, "repository:a:pull,push"), data)
    # A token for the target alone (what a client caching one token per repository sends):
    # the registry also wants pull on the source, so the mount is refused.
    only_b = _token(token_server, "repository:b:pull,push")
    refused = client.post("/v2/b/blobs/uploads/", params={"mount": digest, "from": "a"}, headers=_bearer(only_b))
    assert refused.status_code in (401, 403)
    assert "repository:a:pull" in refused.headers["WWW-Authenticate"]

    before = len(token_server.requests)
    both = _token(token_server, "repository:a:pull repository:b:pull,push")
    assert token_server.requests[before:] == [("alice", ("repository:a:pull", "repository:b:pull,push"))]
    mounted = client.post("/v2/b/blobs/uploads/", params={"mount": digest, "from": "a"}, headers=_bearer(both))
    assert mounted.status_code == 201, mounted.text
    assert mounted.headers["Docker-Content-Digest"] == digest
    fetched = client.get(f"/v2/b/blobs/{digest}", headers=_bearer(both), follow_redirects=True)
    assert fetched.status_code == 200 and fetched.content == data


def test_an_expired_token_is_refused(client: httpx.Client, token_server: TokenServer) -> None:
    access = token_server.access_for("alice", ["repository:x:pull"])
    # distribution allows 60 s of clock skew past exp: expire it well before that.
    stale = token_server.make_token("alice", access, expires_in=-120)
    assert client.get("/v2/x/tags/list", headers=_bearer(stale)).status_code == 401
    fresh = token_server.make_token("alice", access, expires_in=5)
    assert client.get("/v2/x/tags/list", headers=_bearer(fresh)).status_code == 404


def test_the_oauth2_password_grant_gives_a_token_too(client: httpx.Client, token_server: TokenServer) -> None:
    """containerd and BuildKit POST the password grant first, falling back to GET."""
    resp = httpx.post(
        token_server.realm,
        timeout=10,
        data={
            "grant_type": "password",
            "username": "alice",
            "password": USERS["alice"],
            "service": token_server.service,
            "client_id": "test",
            "scope": "repository:x:pull repository:y:push",
        },
    )
    assert resp.status_code == 200, resp.text
    token = resp.json()["access_token"]
    assert token_server.decode(token)["access"][1] == {"type": "repository", "name": "y", "actions": ["push"]}
    assert client.get("/v2/x/tags/list", headers=_bearer(token)).status_code == 404
    wrong = httpx.post(
        token_server.realm,
        timeout=10,
        data={"grant_type": "password", "username": "alice", "password": "nope", "service": token_server.service},
    )
    assert wrong.status_code == 401
    refresh = httpx.post(token_server.realm, timeout=10, data={"grant_type": "refresh_token", "refresh_token": "x"})
    assert refresh.status_code == 400


def test_bad_missing_or_malformed_requests(token_server: TokenServer) -> None:
    realm, service = token_server.realm, token_server.service
    scope = {"service": service, "scope": "repository:x:pull"}
    assert httpx.get(realm, params=scope, timeout=10).status_code == 401  # anonymous not allowed
    assert httpx.get(realm, params=scope, auth=("alice", "wrong"), timeout=10).status_code == 401
    assert httpx.get(realm, params=scope, auth=("mallory", "x"), timeout=10).status_code == 401
    assert httpx.get(realm, params=scope, headers={"Authorization": "Bearer abc"}, timeout=10).status_code == 401
    assert (
        httpx.get(
            realm, params={"service": "other", "scope": "repository:x:pull"}, auth=("alice", USERS["alice"]), timeout=10
        ).status_code
        == 400
    )
    assert (
        httpx.get(
            realm, params={"service": service, "scope": "nonsense"}, auth=("alice", USERS["alice"]), timeout=10
        ).status_code
        == 400
    )


def test_anonymous_pull_when_configured(tmp_path: Path) -> None:
    with TokenServer(tmp_path, users=USERS, anonymous_pull=True, expires_in=30) as server:
        resp = httpx.get(
            server.realm, params={"service": server.service, "scope": "repository:pub/app:pull,push"}, timeout=10
        )
        assert resp.status_code == 200 and resp.json()["expires_in"] == 30
        claims = server.decode(resp.json()["token"])
        assert claims["sub"] == ""
        assert claims["access"] == [{"type": "repository", "name": "pub/app", "actions": ["pull"]}]
        assert server.requests == [(None, ("repository:pub/app:pull,push",))]
        bad = httpx.get(server.realm, params={"scope": "repository:pub/app:pull"}, auth=("alice", "wrong"), timeout=10)
        assert bad.status_code == 401 and server.rejected == [("alice", ("repository:pub/app:pull",))]


def test_our_registry_client_follows_the_bearer_challenge(
    pushed: Pushed, token_registry: Registry, token_server: TokenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEN_USER", "alice")
    monkeypatch.setenv("TOKEN_PASSWORD", USERS["alice"])
    config = RegistryConfig(
        url=token_registry.url, ca_file=token_registry.ca_file, username_env="TOKEN_USER", password_env="TOKEN_PASSWORD"
    )
    token_server.clear_log()
    with RegistryClient(config) as ours:
        assert ours.manifest_info("team/busybox", "1").digest == pushed.digest
        assert ours.manifest_info("team/busybox", "1").digest == pushed.digest
    assert token_server.requests == [TokenRequest("alice", ("repository:team/busybox:pull",))], (
        "one token for the pull scope, cached for the second request"
    )

    monkeypatch.setenv("TOKEN_PASSWORD", "wrong")
    with RegistryClient(config) as ours:
        with pytest.raises(RegistryAuthError, match="token service refused as alice"):
            ours.manifest_info("team/busybox", "1")
