"""The registry client against real distribution registries: plain HTTP, and TLS + basic auth."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import RegistryConfig
from pipeline.errors import NotFound, RegistryAuthError, RegistryError
from pipeline.registry import RegistryClient
from tests.conftest import REGISTRY_PASSWORD, REGISTRY_USER
from tests.services import DockerEngine, Registry, skopeo_inspect

pytestmark = pytest.mark.both_registries  # distribution 2.8 and 3


@pytest.fixture(scope="module")
def secure_image(engine: DockerEngine, secure_registry: Registry, base_image: str, tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    config_dir = tmp_path_factory.mktemp("docker-config")
    ref = f"{secure_registry.host}/team/busybox:1"
    engine.docker("tag", base_image, ref)
    engine.login(secure_registry.host, REGISTRY_USER, REGISTRY_PASSWORD, config_dir)
    engine.push(ref, docker_config=config_dir)
    return ref


def _secure(
    registry: Registry, monkeypatch: pytest.MonkeyPatch, password: str = REGISTRY_PASSWORD, ca: Path | None = None
) -> RegistryConfig:
    monkeypatch.setenv("REG_USER", REGISTRY_USER)
    monkeypatch.setenv("REG_PASSWORD", password)
    return RegistryConfig(
        url=registry.url, ca_file=ca or registry.ca_file, username_env="REG_USER", password_env="REG_PASSWORD"
    )


def test_manifest_digest_matches_skopeo_on_plain_http(registry: Registry, base_image: str) -> None:
    with RegistryClient(RegistryConfig(url=registry.host, insecure=True)) as client:
        client.ping()
        info = client.manifest_info("busybox", "1")
    assert info.digest == skopeo_inspect(base_image, tls_verify=False)["Digest"]
    assert info.media_type == "application/vnd.docker.distribution.manifest.v2+json"


def test_tls_and_basic_auth(secure_registry: Registry, secure_image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with RegistryClient(_secure(secure_registry, monkeypatch)) as client:
        client.ping()
        info = client.manifest_info("team/busybox", "1")
        with pytest.raises(NotFound, match="team/busybox:nope does not exist"):
            client.manifest_info("team/busybox", "nope")
    expected = skopeo_inspect(
        secure_image, tls_verify=True, cert_dir=secure_registry.cert_dir, creds=secure_registry.creds()
    )
    assert info.digest == expected["Digest"]


def test_wrong_password_and_missing_credentials_are_auth_errors(
    secure_registry: Registry, secure_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RegistryClient(_secure(secure_registry, monkeypatch, password="nope")) as client:
        with pytest.raises(RegistryAuthError, match=f"refused the password of {REGISTRY_USER}"):
            client.manifest_info("team/busybox", "1")
    anonymous = RegistryConfig(url=secure_registry.url, ca_file=secure_registry.ca_file)
    with RegistryClient(anonymous) as client:
        with pytest.raises(RegistryAuthError, match="needs a username and password"):
            client.ping()


def test_untrusted_certificate_and_dead_registry_are_clear(
    secure_registry: Registry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with RegistryClient(_secure(secure_registry, monkeypatch, ca=Path("/etc/ssl/certs/ca-certificates.crt"))) as client:
        with pytest.raises(
            RegistryError, match=f"cannot reach registry {secure_registry.host}.*CERTIFICATE_VERIFY_FAILED"
        ):
            client.ping()
    with RegistryClient(RegistryConfig(url="127.0.0.1:9", insecure=True), timeout=3) as client:
        with pytest.raises(RegistryError, match="cannot reach registry 127.0.0.1:9"):
            client.ping()
