"""SLSA provenance on real builds: the ``.att`` cosign attestation in the registry, the row, the API."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.build import attach_provenance as _attach_provenance
from pipeline.config import Config, parse_config
from pipeline.errors import RegistryError
from pipeline.registry import Manifest, RegistryClient
from pipeline.signing import attestation_tag, generate_key_pair, load_private_key, load_public_key, verify_envelope
from pipeline.store import Database, migrate, open_database
from tests import project
from tests.conftest import app_client
from tests.gitrepo import GitRepo
from tests.services import DockerEngine, Registry, skopeo_inspect

pytestmark = pytest.mark.both_registries  # distribution 2.8 and 3

PASSWORD = "att-pa55"
SECRET_VALUE = "tok-5e3r3t-v4lue"


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    database = open_database(f"sqlite:///{tmp_path / 'p.db'}")
    migrate(database)
    return database


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    return generate_key_pair(tmp_path / "keys", PASSWORD.encode())


def _config(
    tmp_path: Path,
    engine: DockerEngine,
    registry: Registry,
    repo: GitRepo,
    monkeypatch: pytest.MonkeyPatch,
    key_file: Path | None,
) -> Config:
    monkeypatch.setenv("DEMO_NPM_TOKEN", SECRET_VALUE)
    data = project.config_data(
        data_dir=tmp_path / "data",
        registry_host=registry.host,
        engine_host=engine.host,
        repo_url=repo.url,
        secrets=[{"id": "npm", "env": "DEMO_NPM_TOKEN"}],
    )
    if key_file is not None:
        data["signing"] = {"key_file": str(key_file)}
    return parse_config(data)


def _dockerfile(base_image: str) -> str:
    return project.dockerfile(base_image) + "RUN --mount=type=secret,id=npm wc -c /run/secrets/npm > /size\n"


def _blob(registry: Registry, repository: str, digest: str) -> bytes:
    response = httpx.get(f"http://{registry.host}/v2/{repository}/blobs/{digest}", follow_redirects=True)
    response.raise_for_status()
    return response.content


def _checked_by_hand(envelope: bytes, public_key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The DSSE check written out, independent of pipeline.signing's verifier."""
    data = json.loads(envelope)
    payload = base64.b64decode(data["payload"])
    kind = data["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
    public_key.verify(base64.b64decode(data["signatures"][0]["sig"]), pae, ec.ECDSA(hashes.SHA256()))
    statement: dict[str, Any] = json.loads(payload)
    return statement


def test_signed_build_attaches_provenance_as_a_cosign_attestation(
    tmp_path: Path,
    engine: DockerEngine,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
    monkeypatch: pytest.MonkeyPatch,
    keys: tuple[Path, Path],
) -> None:
    key_file, pub_file = keys
    config = _config(tmp_path, engine, registry, git_repo, monkeypatch, key_file)
    sha = git_repo.commit({"Dockerfile": _dockerfile(base_image), "hello.txt": "hi\n"})
    build = project.run_build(sqlite_db, config, sha)
    assert build.status == "succeeded", build.error
    digest = build.digest
    assert digest is not None

    tag = attestation_tag(digest)
    manifest = skopeo_inspect(f"{registry.host}/acme/demo:{tag}", tls_verify=False, raw=True)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert len(manifest["layers"]) == 1
    layer = manifest["layers"][0]
    assert layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    assert layer["annotations"]["predicateType"] == "https://slsa.dev/provenance/v1"
    config_blob = json.loads(_blob(registry, "acme/demo", manifest["config"]["digest"]))
    assert config_blob["rootfs"]["diff_ids"] == [layer["digest"]]
    envelope = _blob(registry, "acme/demo", layer["digest"])

    public_key = load_public_key(pub_file)
    statement = _checked_by_hand(envelope, public_key)
    assert verify_envelope(envelope, [public_key]) == statement
    assert statement["subject"] == [{"name": f"{registry.host}/acme/demo", "digest": {"sha256": digest[7:]}}]
    definition = statement["predicate"]["buildDefinition"]
    assert definition["resolvedDependencies"][0]["digest"] == {"gitCommit": sha}
    assert definition["resolvedDependencies"][0]["uri"] == f"git+{git_repo.url}@refs/heads/main"
    assert definition["externalParameters"]["buildArgs"] == build.build_args == {"GREETING": "hello-from-args"}
    assert definition["externalParameters"]["dockerfile"] == "Dockerfile"
    metadata = statement["predicate"]["runDetails"]["metadata"]
    assert metadata["invocationId"] == str(build.id)
    assert metadata["startedOn"] <= metadata["finishedOn"]
    assert SECRET_VALUE not in envelope.decode() and "npm" not in json.dumps(statement)
    assert build.provenance == statement  # the row holds the statement that was signed

    client_gen = app_client(sqlite_db, config)
    client = next(client_gen)
    try:
        shown = client.get(f"/api/v1/images/{digest}").json()
        assert shown["provenance"] == statement and shown["attestations"] is None
        assert shown["builds"][0]["provenance"] == statement
        checked = client.get(f"/api/v1/images/{digest}", params={"attestations": "true"}).json()
        assert checked["attestations"] == {
            "reference": f"{registry.host}/acme/demo:{tag}",
            "present": True,
            "layers": 1,
            "verified": True,
            "verified_layers": 1,
            "detail": f"1 of 1 envelopes verify with {key_file}",
        }
        assert client.get(f"/api/v1/builds/{build.id}").json()["provenance"] == statement
    finally:
        client_gen.close()

    # attaching again: the same signed statement is found and nothing is written; another
    # statement for the digest (a retried build) joins the first
    key, demo = load_private_key(key_file, PASSWORD.encode()), config.projects["demo"]
    assert _attach_provenance(config, demo, digest, statement, key).startswith("provenance already in")
    assert skopeo_inspect(f"{registry.host}/acme/demo:{tag}", tls_verify=False, raw=True) == manifest
    retried = {
        **statement,
        "predicate": {
            **statement["predicate"],
            "runDetails": {**statement["predicate"]["runDetails"], "metadata": {**metadata, "invocationId": "retry"}},
        },
    }
    assert _attach_provenance(config, demo, digest, retried, key).startswith("provenance signed into")
    layers = skopeo_inspect(f"{registry.host}/acme/demo:{tag}", tls_verify=False, raw=True)["layers"]
    assert len(layers) == 2 and layers[0] == layer
    second = _checked_by_hand(_blob(registry, "acme/demo", layers[1]["digest"]), public_key)
    assert second["predicate"]["runDetails"]["metadata"]["invocationId"] == "retry"


def test_unsigned_build_records_provenance_and_pushes_nothing(
    tmp_path: Path,
    engine: DockerEngine,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _config(tmp_path, engine, registry, git_repo, monkeypatch, None)
    sha = git_repo.commit({"Dockerfile": _dockerfile(base_image), "hello.txt": "unsigned\n"})
    build = project.run_build(sqlite_db, config, sha)
    assert build.status == "succeeded", build.error
    assert build.provenance is not None and build.digest is not None
    assert build.provenance["subject"][0]["digest"]["sha256"] == build.digest[7:]
    assert build.provenance["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"]["gitCommit"] == sha
    found = httpx.head(
        f"http://{registry.host}/v2/acme/demo/manifests/{attestation_tag(build.digest)}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert found.status_code == 404


def test_a_key_that_cannot_sign_fails_the_build_before_it_runs(
    tmp_path: Path,
    engine: DockerEngine,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
    monkeypatch: pytest.MonkeyPatch,
    keys: tuple[Path, Path],
) -> None:
    config = _config(tmp_path, engine, registry, git_repo, monkeypatch, keys[0])
    monkeypatch.setenv("COSIGN_PASSWORD", "not-the-password")
    sha = git_repo.commit({"Dockerfile": _dockerfile(base_image), "hello.txt": "bad key\n"})
    build = project.run_build(sqlite_db, config, sha)
    assert build.status == "failed" and build.attempts == 1 and build.digest is None
    assert build.error.startswith(f"provenance: cannot sign with signing.key_file {keys[0]}")
    assert "wrong password" in build.error and "not-the-password" not in build.error


def test_a_registry_error_while_attaching_retries_the_build(
    tmp_path: Path,
    engine: DockerEngine,
    registry: Registry,
    base_image: str,
    git_repo: GitRepo,
    sqlite_db: Database,
    monkeypatch: pytest.MonkeyPatch,
    keys: tuple[Path, Path],
) -> None:
    config = _config(tmp_path, engine, registry, git_repo, monkeypatch, keys[0])
    real_put = RegistryClient.put_manifest

    def flaky_put(self: RegistryClient, repository: str, reference: str, manifest: Manifest) -> str:
        if reference.endswith(".att"):
            raise RegistryError(f"registry {self.host}: storing manifest {repository}:{reference} answered 503")
        return real_put(self, repository, reference, manifest)

    monkeypatch.setattr(RegistryClient, "put_manifest", flaky_put)
    sha = git_repo.commit({"Dockerfile": _dockerfile(base_image), "hello.txt": "flaky\n"})
    build = project.run_build(sqlite_db, config, sha)
    assert build.status == "queued" and build.attempts == 1 and build.provenance is None
    assert build.error.startswith("will retry: registry") and ".att answered 503" in build.error
