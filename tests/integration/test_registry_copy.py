"""Copy by digest between real registries: plain HTTP, TLS + htpasswd, and the token flow.

What landed is checked with skopeo, a client independent of ours: same digests, same bytes.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.config import RegistryConfig
from pipeline.errors import NotFound, RegistryAuthError, RegistryError
from pipeline.registry import RegistryClient, copy_image
from tests.conftest import REGISTRY_PASSWORD, REGISTRY_USER, TOKEN_USERS
from tests.images import OciLayout, skopeo_push
from tests.services import Registry, skopeo_inspect

pytestmark = pytest.mark.both_registries  # distribution 2.8 and 3


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> OciLayout:
    """A one-platform image of three layers and a two-platform index, made without Docker."""
    found = OciLayout(tmp_path_factory.mktemp("oci"))
    found.tag("single", found.image([300_000, 50_000, 1_000], seed=1, gzip_level=1))
    amd = found.image([200_000, 10_000], seed=2, platform="linux/amd64")
    arm = found.image([210_000, 10_000], seed=3, platform="linux/arm64")
    found.tag("multi", found.index([amd, arm]))
    return found


@pytest.fixture(scope="module")
def source(registry: Registry, layout: OciLayout) -> Registry:
    skopeo_push(layout, "single", registry, "src/app")
    skopeo_push(layout, "multi", registry, "src/app")
    return registry


def _plain(registry: Registry) -> RegistryConfig:
    return RegistryConfig(url=registry.host, insecure=True)


@pytest.fixture
def secure_config(secure_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> RegistryConfig:
    monkeypatch.setenv("SEC_USER", REGISTRY_USER)
    monkeypatch.setenv("SEC_PASSWORD", REGISTRY_PASSWORD)
    return RegistryConfig(
        url=secure_registry.url, ca_file=secure_registry.ca_file, username_env="SEC_USER", password_env="SEC_PASSWORD"
    )


@pytest.fixture
def token_config(token_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> RegistryConfig:
    monkeypatch.setenv("TOK_USER", "alice")
    monkeypatch.setenv("TOK_PASSWORD", TOKEN_USERS["alice"])
    return RegistryConfig(
        url=token_registry.url, ca_file=token_registry.ca_file, username_env="TOK_USER", password_env="TOK_PASSWORD"
    )


@pytest.fixture
def clients(source: Registry) -> Iterator[RegistryClient]:
    with RegistryClient(_plain(source)) as client:
        yield client


def _inspect(registry: Registry, ref: str, creds: str | None = None) -> dict:  # type: ignore[type-arg]
    return skopeo_inspect(
        f"{registry.host}/{ref}", tls_verify=registry.tls, cert_dir=registry.cert_dir, creds=creds, raw=True
    )


def test_copy_to_a_tls_basic_auth_registry_keeps_every_digest(
    clients: RegistryClient,
    source: Registry,
    layout: OciLayout,
    secure_registry: Registry,
    secure_config: RegistryConfig,
) -> None:
    digest = layout.refs["single"]
    with RegistryClient(secure_config) as target:
        report = copy_image(clients, "src/app", target, "prod/app", digest, tags=["prod"])
    assert report.blobs_copied == 4 and report.manifests_copied == 1  # config + three layers
    assert report.bytes_copied == sum(
        len(layout.read(str(b["digest"])))
        for b in [*_manifest(layout, digest)["layers"], _manifest(layout, digest)["config"]]
    )
    landed = skopeo_inspect(
        f"{secure_registry.host}/prod/app:prod",
        tls_verify=True,
        cert_dir=secure_registry.cert_dir,
        creds=secure_registry.creds(),
        raw=True,
    )
    assert landed == _manifest(layout, digest)
    resolved = skopeo_inspect(
        f"{secure_registry.host}/prod/app:prod",
        tls_verify=True,
        cert_dir=secure_registry.cert_dir,
        creds=secure_registry.creds(),
    )
    assert resolved["Digest"] == digest


def _manifest(layout: OciLayout, digest: str) -> dict:  # type: ignore[type-arg]
    return json.loads(layout.read(digest))  # type: ignore[no-any-return]


def test_a_two_platform_index_is_copied_children_first(
    clients: RegistryClient, layout: OciLayout, token_registry: Registry, token_config: RegistryConfig
) -> None:
    digest = layout.refs["multi"]
    with RegistryClient(token_config) as target:
        report = copy_image(clients, "src/app", target, "team/multi", digest, tags=["staging"])
        assert target.manifest_info("team/multi", "staging").digest == digest
        for child in _manifest(layout, digest)["manifests"]:
            assert target.manifest("team/multi", child["digest"]).digest == child["digest"]
    assert report.manifests_copied == 3
    creds = f"alice:{TOKEN_USERS['alice']}"
    assert (
        skopeo_inspect(
            f"{token_registry.host}/team/multi:staging", tls_verify=True, cert_dir=token_registry.cert_dir, creds=creds
        )["Digest"]
        == digest
    )


def test_a_second_copy_sends_no_blob_and_moves_only_the_tag(
    clients: RegistryClient, layout: OciLayout, secure_config: RegistryConfig
) -> None:
    digest = layout.refs["single"]
    with RegistryClient(secure_config) as target:
        copy_image(clients, "src/app", target, "again/app", digest, tags=["a"])
        again = copy_image(clients, "src/app", target, "again/app", digest, tags=["b"])
        assert target.manifest_info("again/app", "b").digest == digest
    assert (again.blobs_copied, again.bytes_copied, again.manifests_present) == (0, 0, 1)


def test_within_one_registry_blobs_are_mounted_not_copied(clients: RegistryClient, layout: OciLayout) -> None:
    digest = layout.refs["single"]
    report = copy_image(clients, "src/app", clients, "mounted/app", digest, tags=["dev"])
    assert (report.blobs_mounted, report.blobs_copied, report.bytes_copied) == (4, 0, 0)
    assert clients.manifest_info("mounted/app", "dev").digest == digest


def test_chunked_uploads_land_the_same_bytes(
    source: Registry, layout: OciLayout, secure_registry: Registry, secure_config: RegistryConfig
) -> None:
    digest = layout.refs["single"]
    chunked = secure_config.model_copy(update={"chunk_size_mb": 1})
    with RegistryClient(_plain(source)) as src, RegistryClient(chunked) as target:
        report = copy_image(src, "src/app", target, "chunked/app", digest, tags=["x"])
        assert target.manifest_info("chunked/app", "x").digest == digest
    assert report.blobs_copied == 4


def test_unknown_digest_is_not_found_and_nothing_is_tagged(clients: RegistryClient, registry: Registry) -> None:
    missing = "sha256:" + "0" * 64
    with pytest.raises(NotFound, match="does not exist"):
        copy_image(clients, "src/app", clients, "nothing/app", missing, tags=["dev"])
    assert clients.find_manifest("nothing/app", "dev") is None


def test_a_blob_whose_bytes_do_not_match_its_digest_is_refused(clients: RegistryClient, tmp_path: Path) -> None:
    data = b"not what the digest says"
    with pytest.raises(RegistryError, match="expected 24 bytes of sha256:"):
        clients.upload_blob("bad/app", "sha256:" + "1" * 64, len(data), [data])
    assert not clients.blob_exists("bad/app", "sha256:" + "1" * 64)


def _docker_config(tmp_path: Path, content: dict) -> Path:  # type: ignore[type-arg]
    folder = tmp_path / "docker-config"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(content))
    return folder


@pytest.mark.parametrize("source_of_credentials", ["auths", "credHelpers", "credsStore"])
def test_credentials_come_from_docker_config_json_and_credential_helpers(
    source_of_credentials: str,
    clients: RegistryClient,
    layout: OciLayout,
    secure_registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What `docker login` left behind is enough: config.json's auths, or a real helper program."""
    host = secure_registry.host
    helper_dir = tmp_path / "bin"
    helper_dir.mkdir()
    helper = helper_dir / "docker-credential-pipelinetest"
    helper.write_text(
        "#!/bin/sh\nread server\n"
        f'[ "$server" = "{host}" ] || {{ echo "credentials not found in native keychain"; exit 1; }}\n'
        f'printf \'{{"ServerURL":"%s","Username":"{REGISTRY_USER}","Secret":"{REGISTRY_PASSWORD}"}}\' '
        '"$server"\n'
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper_dir}:{os.environ['PATH']}")
    encoded = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
    content = {
        "auths": {"auths": {f"https://{host}": {"auth": encoded}}},
        "credHelpers": {"credHelpers": {host: "pipelinetest"}},
        "credsStore": {"credsStore": "pipelinetest"},
    }[source_of_credentials]
    config = RegistryConfig(
        url=secure_registry.url, ca_file=secure_registry.ca_file, docker_config=_docker_config(tmp_path, content)
    )
    digest = layout.refs["single"]
    with RegistryClient(config) as target:
        copy_image(clients, "src/app", target, f"creds/{source_of_credentials.lower()}", digest, tags=["ok"])
    assert (
        skopeo_inspect(
            f"{host}/creds/{source_of_credentials.lower()}:ok",
            tls_verify=True,
            cert_dir=secure_registry.cert_dir,
            creds=secure_registry.creds(),
        )["Digest"]
        == digest
    )


def test_a_docker_config_without_an_entry_for_the_registry_gets_a_clear_refusal(
    clients: RegistryClient, layout: OciLayout, secure_registry: Registry, tmp_path: Path
) -> None:
    config = RegistryConfig(
        url=secure_registry.url,
        ca_file=secure_registry.ca_file,
        docker_config=_docker_config(tmp_path, {"auths": {"other.example.com": {"auth": "eDp5"}}}),
    )
    with RegistryClient(config) as target, pytest.raises(RegistryAuthError, match="needs a username and password"):
        copy_image(clients, "src/app", target, "creds/none", layout.refs["single"], tags=["no"])
