"""Cosign signatures in promotions, against real registries: sign on the way into an
environment, carry ``.sig`` along, verify before a later stage, refuse what does not verify.

dev (plain HTTP, signs) → staging (TLS + basic, verifies with our key); the other stages are
the cases that must be refused. Build rows are written straight into the database for images
skopeo pushed into the build registry.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pipeline.config import Config, parse_config
from pipeline.errors import ConfigError
from pipeline.registry import Manifest, RegistryClient
from pipeline.signing import (
    MANIFEST_MEDIA_TYPE,
    append_signature,
    generate_key_pair,
    load_private_key,
    load_public_key,
    sign_payload,
    signature_tag,
    simple_signing_payload,
    verify_signature_manifest,
)
from pipeline.store import Database
from tests.conftest import REGISTRY_PASSWORD, REGISTRY_USER, app_client
from tests.images import OciLayout, skopeo_push
from tests.seed import succeeded_builds
from tests.services import Registry, skopeo_inspect
from workers.promotion_worker import PromotionWorker

pytestmark = pytest.mark.both_registries  # distribution 2.8 and 3

IMAGES = ("s1", "s2")
SOURCE = "acme/signing-src"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def pushed(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    layout = OciLayout(tmp_path_factory.mktemp("signing-oci"))
    for seed, tag in enumerate(IMAGES, start=40):
        layout.tag(tag, layout.image([30_000, 2_000], seed=seed))
        skopeo_push(layout, tag, registry, SOURCE)
    return dict(layout.refs)


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Our key pair, and another signer's; a public key file that is not a key."""
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    ours, ours_pub = generate_key_pair(tmp_path / "ours", PASSWORD.encode())
    theirs, theirs_pub = generate_key_pair(tmp_path / "theirs", PASSWORD.encode())
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n")
    return {"key": ours, "pub": ours_pub, "other_key": theirs, "other_pub": theirs_pub, "garbage": garbage}


def config_data(
    tmp_path: Path, registry: Registry, secure: Registry, run: str, keys: dict[str, Path], key: Path
) -> dict[str, Any]:
    pub, other, garbage = str(keys["pub"]), str(keys["other_pub"]), str(keys["garbage"])
    return {
        "data_dir": str(tmp_path / "data"),
        "worker": {"lease_seconds": 10, "poll_seconds": 0.05, "max_attempts": 2},
        "signing": {"key_file": str(key)},
        "registries": {
            "local": {"url": registry.host, "insecure": True},
            "private": {
                "url": secure.url,
                "ca_file": str(secure.ca_file),
                "username_env": "PRIV_USER",
                "password_env": "PRIV_PASSWORD",
            },
        },
        "projects": {
            "demo": {
                "repo": "https://git.example.com/acme/demo.git",
                "allow_unsigned": True,
                "image": {"registry": "local", "repository": SOURCE},
                "environments": [
                    {"name": "dev", "registry": "local", "repository": f"acme/dev-{run}", "sign": True},
                    {
                        "name": "staging",
                        "registry": "private",
                        "repository": f"team/staging-{run}",
                        "requires": "dev",
                        "verify": [pub],
                    },
                    {
                        "name": "wrongkey",
                        "registry": "private",
                        "repository": f"team/wrong-{run}",
                        "requires": "dev",
                        "verify": [other],
                    },
                    {
                        "name": "badkey",
                        "registry": "private",
                        "repository": f"team/bad-{run}",
                        "requires": "dev",
                        "verify": [garbage],
                    },
                    {"name": "plain", "registry": "local", "repository": f"acme/plain-{run}"},
                    {
                        "name": "checked",
                        "registry": "private",
                        "repository": f"team/checked-{run}",
                        "requires": "plain",
                        "verify": [other, pub],
                    },
                    {
                        "name": "canary",
                        "registry": "local",
                        "repository": f"acme/dev-{run}",
                        "tag": "canary",
                        "sign": True,
                    },
                ],
            }
        },
    }


@pytest.fixture
def data(
    tmp_path: Path,
    registry: Registry,
    secure_registry: Registry,
    keys: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    monkeypatch.setenv("PRIV_USER", REGISTRY_USER)
    monkeypatch.setenv("PRIV_PASSWORD", REGISTRY_PASSWORD)
    return config_data(tmp_path, registry, secure_registry, secrets.token_hex(4), keys, keys["key"])


@pytest.fixture
def config(data: dict[str, Any]) -> Config:
    return parse_config(data)


@pytest.fixture
def built(db: Database, config: Config, pushed: dict[str, str]) -> dict[str, int]:
    return dict(zip(IMAGES, succeeded_builds(db, config, "demo", [pushed[t] for t in IMAGES], first=7), strict=True))


@pytest.fixture
def api(db: Database, config: Config) -> Iterator[TestClient]:
    yield from app_client(db, config)


def ship(api: TestClient, db: Database, config: Config, environment: str, build_id: int) -> dict[str, Any]:
    """Ask for a promotion, work it with the real worker, return the finished row."""
    answer = api.post("/api/v1/promotions", json={"project": "demo", "environment": environment, "build_id": build_id})
    assert answer.status_code == 202, answer.text
    assert PromotionWorker(db, config).run_once()
    return api.get(f"/api/v1/promotions/{answer.json()['id']}").json()  # type: ignore[no-any-return]


def location(config: Config, environment: str) -> tuple[RegistryClient, str]:
    env = config.project("demo").environment(environment)
    return RegistryClient(config.registries[env.registry]), env.repository


def signatures(config: Config, environment: str, digest: str, pubs: list[Path]) -> tuple[int, list[int]]:
    """(layers in the .sig, index of the key verifying each good layer) in the environment's repository."""
    client, repository = location(config, environment)
    with client:
        manifest = client.manifest(repository, signature_tag(digest))
        verified = verify_signature_manifest(
            manifest.raw, lambda d: client.read_blob(repository, d), digest, [load_public_key(p) for p in pubs]
        )
        return len(manifest.json()["layers"]), [v.key_index for v in verified]


def push_signature(config: Config, environment: str, digest: str, payload: bytes, signature: str) -> None:
    client, repository = location(config, environment)
    with client:
        update = append_signature(None, payload, signature)
        for blob in update.uploads:
            client.upload_blob(repository, blob.digest, len(blob.data), [blob.data])
        client.put_manifest(
            repository,
            signature_tag(digest),
            Manifest(update.manifest, MANIFEST_MEDIA_TYPE, "sha256:" + hashlib.sha256(update.manifest).hexdigest()),
        )


def test_signed_in_dev_kept_beside_a_second_signer_and_verified_into_staging(
    db: Database,
    config: Config,
    data: dict[str, Any],
    built: dict[str, int],
    pushed: dict[str, str],
    api: TestClient,
    registry: Registry,
    secure_registry: Registry,
    keys: dict[str, Path],
) -> None:
    digest, pubs = pushed["s1"], [keys["pub"], keys["other_pub"]]
    dev = ship(api, db, config, "dev", built["s1"])
    assert dev["status"] == "succeeded", dev["error"]
    assert [s["kind"] for s in dev["steps"]] == ["copy-image", "copy-signatures", "sign", "move-tag"]
    assert dev["copy_report"]["tags"] == ["dev"]
    assert signatures(config, "dev", digest, [keys["pub"]]) == (1, [0])
    dev_repo = config.project("demo").environment("dev").repository
    raw = skopeo_inspect(f"{registry.host}/{dev_repo}:{signature_tag(digest)}", tls_verify=False, raw=True)
    assert raw["layers"][0]["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert skopeo_inspect(f"{registry.host}/{dev_repo}:dev", tls_verify=False)["Digest"] == digest

    other = parse_config({**data, "signing": {"key_file": str(keys["other_key"])}})
    canary = ship(api, db, other, "canary", built["s1"])  # another environment, same repository, another key
    assert canary["status"] == "succeeded", canary["error"]
    assert signatures(config, "dev", digest, pubs) == (2, [0, 1])
    again = ship(api, db, config, "dev", built["s1"])  # signing again finds its signature there
    assert again["status"] == "succeeded" and "already signed" in again["steps"][2]["message"]
    assert signatures(config, "dev", digest, pubs) == (2, [0, 1])

    staging = ship(api, db, config, "staging", built["s1"])
    assert staging["status"] == "succeeded", staging["error"]
    assert [s["kind"] for s in staging["steps"]] == ["verify-signature", "copy-image", "copy-signatures", "move-tag"]
    assert str(keys["pub"]) in staging["steps"][0]["message"]
    assert signatures(config, "staging", digest, pubs) == (2, [0, 1])  # both signatures travelled along
    staging_repo = config.project("demo").environment("staging").repository
    raw = skopeo_inspect(
        f"{secure_registry.host}/{staging_repo}:{signature_tag(digest)}",
        tls_verify=True,
        cert_dir=secure_registry.cert_dir,
        creds=secure_registry.creds(),
        raw=True,
    )
    assert len(raw["layers"]) == 2


def test_refusals_name_the_keys_and_what_was_wrong(
    db: Database, config: Config, built: dict[str, int], pushed: dict[str, str], api: TestClient, keys: dict[str, Path]
) -> None:
    digest = pushed["s2"]
    assert ship(api, db, config, "plain", built["s2"])["status"] == "succeeded"
    unsigned = ship(api, db, config, "checked", built["s2"])
    assert unsigned["status"] == "rejected"
    assert "no signature" in unsigned["error"] and str(keys["pub"]) in unsigned["error"]
    assert [(s["kind"], s["status"]) for s in unsigned["steps"]] == [("verify-signature", "refused")]

    assert ship(api, db, config, "dev", built["s2"])["status"] == "succeeded"
    wrong = ship(api, db, config, "wrongkey", built["s2"])
    assert wrong["status"] == "rejected", wrong["error"]
    assert str(keys["other_pub"]) in wrong["error"] and "does not verify" in wrong["error"]
    client, repository = location(config, "wrongkey")
    with client:
        assert client.find_manifest(repository, "wrongkey") is None  # nothing moved

    bad = ship(api, db, config, "badkey", built["s2"])  # a key that cannot be read is our fault: failed
    assert bad["status"] == "failed" and str(keys["garbage"]) in bad["error"] and "not a PEM public key" in bad["error"]
    assert signatures(config, "dev", digest, [keys["pub"]]) == (1, [0])


@pytest.mark.parametrize("tamper", ["other-digest", "altered-signature"])
def test_a_tampered_signature_is_refused(
    tamper: str,
    db: Database,
    config: Config,
    built: dict[str, int],
    pushed: dict[str, str],
    api: TestClient,
    registry: Registry,
    keys: dict[str, Path],
) -> None:
    digest = pushed["s1"]
    assert ship(api, db, config, "plain", built["s1"])["status"] == "succeeded"
    key = load_private_key(keys["key"])
    reference = f"{registry.host}/{config.project('demo').environment('plain').repository}"
    if tamper == "other-digest":
        payload = simple_signing_payload(reference, pushed["s2"])  # validly signed, for another image
        signature = sign_payload(key, payload)
        words = "digest mismatch"
    else:
        payload = simple_signing_payload(reference, digest)
        good = bytearray(base64.b64decode(sign_payload(key, payload)))
        good[-1] ^= 0x01
        signature = base64.b64encode(bytes(good)).decode()
        words = "does not verify"
    push_signature(config, "plain", digest, payload, signature)
    refused = ship(api, db, config, "checked", built["s1"])
    assert refused["status"] == "rejected"
    assert words in refused["error"] and str(keys["pub"]) in refused["error"]
    assert str(keys["other_pub"]) in refused["error"]


def test_concurrent_signers_of_one_image_keep_each_others_signature(
    db: Database,
    config: Config,
    data: dict[str, Any],
    built: dict[str, int],
    pushed: dict[str, str],
    api: TestClient,
    keys: dict[str, Path],
) -> None:
    other = parse_config({**data, "signing": {"key_file": str(keys["other_key"])}})
    ids = []
    for environment in ("dev", "canary"):  # the same repository: one .sig tag, two writers at once
        answer = api.post(
            "/api/v1/promotions", json={"project": "demo", "environment": environment, "build_id": built["s2"]}
        )
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
    start = threading.Barrier(2)

    def run(worker_config: Config) -> None:  # each worker works one promotion, both at once
        worker = PromotionWorker(db, worker_config)
        start.wait()
        for _ in range(100):  # a claim can lose a race for SQLite's write lock: claim again
            if worker.run_once():
                return
            threading.Event().wait(0.05)

    threads = [threading.Thread(target=run, args=(c,)) for c in (config, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = [api.get(f"/api/v1/promotions/{i}").json() for i in ids]
    assert [r["status"] for r in rows] == ["succeeded", "succeeded"], [r["error"] for r in rows]
    layers, verified = signatures(config, "dev", pushed["s2"], [keys["pub"], keys["other_pub"]])
    assert layers == 2 and sorted(verified) == [0, 1]


def test_config_demands_a_key_for_signing_and_existing_verify_keys(data: dict[str, Any], tmp_path: Path) -> None:
    del data["signing"]
    with pytest.raises(ConfigError, match=r"projects\.demo\.environments\.dev\.sign: signing needs a key"):
        parse_config(data)
    data["signing"] = {"key_file": str(tmp_path / "missing.key")}
    with pytest.raises(ConfigError, match="signing.key_file: no key file"):
        parse_config(data)
    data["signing"] = {"key_file": str(tmp_path / "ours" / "cosign.key")}
    data["projects"]["demo"]["environments"][1]["verify"] = [str(tmp_path / "nope.pub")]
    with pytest.raises(ConfigError, match=r"environments\.staging\.verify\.0: no public key file"):
        parse_config(data)
