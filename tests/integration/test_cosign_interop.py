"""The real cosign (2 and 3) against what this service writes and reads, on distribution 2.8 and 3.

Three directions, all offline (keys only: no Fulcio, no Rekor):

- what we sign and attest, the real ``cosign verify``, ``cosign verify-attestation --type
  slsaprovenance1`` and ``cosign tree`` accept at the promotion's target, with no extra step;
- what the real ``cosign sign`` writes, our ``verify:`` policy accepts and carries along, and
  refuses with a reason when another key signed it, its payload names another image, or its
  annotations were changed (nothing moves then);
- keys go both ways: ``pipeline keys generate`` makes a key ``cosign sign`` uses, and
  ``cosign generate-key-pair`` one the service signs with.

The image with provenance is a real build (BuildKit, the ``.att`` the build attaches); the
images cosign signs are pushed with skopeo. A promotion is worked by the real worker.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pipeline.config import Config, RegistryConfig, parse_config
from pipeline.registry import Manifest, RegistryClient
from pipeline.signing import append_signature, attestation_tag, referrers_tag, signature_tag
from pipeline.store import Database, migrate, open_database
from tests import project
from tests.conftest import REGISTRY_PASSWORD, REGISTRY_USER, app_client
from tests.gitrepo import GitRepo
from tests.images import OciLayout, skopeo_push
from tests.seed import succeeded_builds
from tests.services import DockerEngine, Registry
from tests.tools import tool
from workers.promotion_worker import PromotionWorker

pytestmark = pytest.mark.both_registries  # distribution 2.8 and 3

PASSWORD = "interop-pa55"
COSIGNS = ("cosign2", "cosign3")
SOURCE = "acme/cosigned"  # images the real cosign signs (the build's repository is acme/demo)
CASES = ("accepted", "other-key", "other-image", "annotations")


@dataclass
class Cosign:
    """One cosign binary with a private HOME and DOCKER_CONFIG (credentials of the TLS registry),
    and the flags this line needs to work offline with keys and read the ``.sig`` layout."""

    name: str
    path: str
    home: Path
    secure: Registry
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        config = self.home / "docker"
        config.mkdir(parents=True, exist_ok=True)
        auth = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
        (config / "config.json").write_text(json.dumps({"auths": {self.secure.host: {"auth": auth}}}))
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "DOCKER_CONFIG": str(config),
            "COSIGN_PASSWORD": PASSWORD,
            "SIGSTORE_NO_CACHE": "true",
            "TUF_ROOT": str(self.home / "tuf"),
        }

    def registry_flags(self, registry: Registry) -> list[str]:
        """Plain HTTP needs --allow-http-registry; our TLS registries have their own CA."""
        if registry.ca_file is None:
            return ["--allow-http-registry=true"]
        return [f"--registry-cacert={registry.ca_file}"]

    def run(self, *args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.path, *args], env=self.env, capture_output=True, text=True, timeout=120, cwd=cwd, check=False
        )
        if check and done.returncode != 0:
            pytest.fail(f"{self.name} {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
        return done

    def verify(
        self, registry: Registry, ref: str, key: Path, *more: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "verify",
            "--key",
            str(key),
            "--insecure-ignore-tlog=true",
            *self.registry_flags(registry),
            *more,
            ref,
            check=check,
        )

    def verify_attestation(
        self, registry: Registry, ref: str, key: Path, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "verify-attestation",
            "--key",
            str(key),
            "--type",
            "slsaprovenance1",
            "--insecure-ignore-tlog=true",
            *self.registry_flags(registry),
            ref,
            check=check,
        )

    def sign(self, registry: Registry, ref: str, key: Path, *more: str) -> subprocess.CompletedProcess[str]:
        return self.run(
            "sign",
            "--key",
            str(key),
            "--tlog-upload=false",
            "--yes",
            *self.sign_flags(),
            *self.registry_flags(registry),
            *more,
            ref,
        )

    def sign_flags(self) -> list[str]:
        """cosign 3 refuses --tlog-upload=false beside its default --use-signing-config (which
        would fetch a signing config from the public TUF root): turn that off too."""
        return ["--use-signing-config=false"] if self.name == "cosign3" else []

    @property
    def layout(self) -> str:
        """Where ``cosign sign`` puts the signature by default: cosign 3 writes a sigstore
        bundle as an OCI referrer, cosign 2 a layer of the ``.sig`` tag."""
        return "bundle" if self.name == "cosign3" else "sig"


@pytest.fixture(params=COSIGNS)
def cosign(request: pytest.FixtureRequest, tmp_path: Path, secure_registry: Registry) -> Cosign:
    return Cosign(request.param, tool(request.param), tmp_path / request.param, secure_registry)


def payloads(output: str) -> list[dict[str, Any]]:
    """The verified payloads ``cosign verify`` prints as a JSON array on stdout."""
    start = output.find("[")
    if start < 0:
        pytest.fail(f"cosign printed no payloads: {output!r}")
    found: list[dict[str, Any]] = json.loads(output[start:])
    return found


def statements(output: str) -> list[dict[str, Any]]:
    """The in-toto statements of the envelopes ``cosign verify-attestation`` prints, one a line."""
    found = []
    for line in output.splitlines():
        if line.strip().startswith("{"):
            envelope = json.loads(line)
            found.append(json.loads(base64.b64decode(envelope["payload"])))
    return found


# -- the shipped image: built with provenance, promoted with sign: true ------------------------


@dataclass
class Shipped:
    """A built digest (provenance attached) promoted into the TLS registry with ``sign: true``."""

    config: Config
    db: Database
    api: TestClient
    digest: str
    keys: dict[str, Path]
    target_repo: str
    build_id: int
    data: dict[str, Any]
    tmp: Path
    seeds: Iterator[int] = field(default_factory=lambda: iter(range(700, 10_000)))


def _pipeline_keys_generate(directory: Path) -> tuple[Path, Path]:
    """``pipeline keys generate``, the command users run, in a process of its own."""
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "keys", "generate", "--output-dir", str(directory)],
        env={**os.environ, "COSIGN_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return directory / "cosign.key", directory / "cosign.pub"


def _config_data(
    tmp: Path,
    engine: DockerEngine,
    registry: Registry,
    secure: Registry,
    repo: GitRepo,
    keys: dict[str, Path],
    run: str,
) -> dict[str, Any]:
    data = project.config_data(
        data_dir=tmp / "data", registry_host=registry.host, engine_host=engine.host, repo_url=repo.url
    )
    data["worker"].update(poll_seconds=0.05, max_attempts=2)
    data["signing"] = {"key_file": str(keys["key"])}
    data["registries"]["private"] = {
        "url": secure.url,
        "ca_file": str(secure.ca_file),
        "username_env": "PRIV_USER",
        "password_env": "PRIV_PASSWORD",
    }
    demo = data["projects"]["demo"]
    demo["allow_unsigned"] = True
    demo["environments"] = [
        {"name": "prod", "registry": "private", "repository": f"team/cosign-{run}", "sign": True},
        {"name": "theirs", "registry": "private", "repository": f"team/theirs-{run}", "sign": True},
    ]
    data["projects"]["cosigned"] = {
        "repo": "https://git.example.com/acme/cosigned.git",
        "image": {"registry": "local", "repository": SOURCE},
        "allow_unsigned": True,
        "environments": [
            {
                "name": case,
                "registry": "private",
                "repository": f"team/{case}-{run}",
                "verify": [str(keys["theirs_pub"])],
            }
            for case in CASES
        ]
        + [{"name": "ourkey", "registry": "private", "repository": f"team/ourkey-{run}", "verify": [str(keys["pub"])]}],
    }
    return data


@pytest.fixture(scope="module")
def shipped(
    tmp_path_factory: pytest.TempPathFactory,
    engine: DockerEngine,
    registry: Registry,
    secure_registry: Registry,
    base_image: str,
) -> Iterator[Shipped]:
    tmp = tmp_path_factory.mktemp("cosign-interop")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "PRIV_USER": REGISTRY_USER,
            "PRIV_PASSWORD": REGISTRY_PASSWORD,
            "COSIGN_PASSWORD": PASSWORD,
            "DOCKER_CONFIG": str(tmp / "docker"),
        }.items():
            patch.setenv(name, value)
        ours, ours_pub = _pipeline_keys_generate(tmp / "ours")
        theirs = Cosign("cosign2", tool("cosign2"), tmp / "cosign-home", secure_registry)
        theirs.run("generate-key-pair", "--output-key-prefix", "theirs", cwd=tmp)
        keys = {"key": ours, "pub": ours_pub, "theirs_key": tmp / "theirs.key", "theirs_pub": tmp / "theirs.pub"}
        git_repo = GitRepo.create(tmp / "git")
        data = _config_data(tmp, engine, registry, secure_registry, git_repo, keys, secrets.token_hex(4))
        config = parse_config(data)
        db = open_database(f"sqlite:///{tmp / 'pipeline.db'}")
        migrate(db)
        sha = git_repo.commit({"Dockerfile": project.dockerfile(base_image), "hello.txt": f"cosign {tmp.name}\n"})
        build = project.run_build(db, config, sha)
        assert build.status == "succeeded", build.error
        assert build.digest is not None
        clients = app_client(db, config, actor="interop")
        shipped = Shipped(
            config,
            db,
            next(clients),
            build.digest,
            keys,
            config.project("demo").environment("prod").repository,
            build.id,
            data,
            tmp,
        )
        prod = promote(shipped, "demo", "prod", build.id)
        assert prod["status"] == "succeeded", prod["error"]
        assert [s["kind"] for s in prod["steps"]] == ["copy-image", "copy-signatures", "sign", "move-tag"]
        yield shipped
        clients.close()
        db.dispose()


def promote(
    shipped: Shipped, project_name: str, environment: str, build_id: int, config: Config | None = None
) -> dict[str, Any]:
    """Ask the API for a promotion of the build, work it with the real worker; the finished row."""
    answer = shipped.api.post(
        "/api/v1/promotions", json={"project": project_name, "environment": environment, "build_id": build_id}
    )
    assert answer.status_code == 202, answer.text
    assert PromotionWorker(shipped.db, config or shipped.config, name="interop").run_once()
    return shipped.api.get(f"/api/v1/promotions/{answer.json()['id']}").json()  # type: ignore[no-any-return]


def test_our_signature_and_provenance_verify_with_real_cosign_at_the_target(
    shipped: Shipped, cosign: Cosign, secure_registry: Registry
) -> None:
    ref = f"{secure_registry.host}/{shipped.target_repo}@{shipped.digest}"
    verified = payloads(cosign.verify(secure_registry, ref, shipped.keys["pub"]).stdout)
    assert [p["critical"]["image"]["docker-manifest-digest"] for p in verified] == [shipped.digest]
    assert verified[0]["critical"]["identity"]["docker-reference"] == f"{secure_registry.host}/{shipped.target_repo}"

    # the provenance the build attached travelled with the promotion
    found = statements(cosign.verify_attestation(secure_registry, ref, shipped.keys["pub"]).stdout)
    assert [s["predicateType"] for s in found] == ["https://slsa.dev/provenance/v1"]
    assert found[0]["subject"][0]["digest"] == {"sha256": shipped.digest.removeprefix("sha256:")}

    tree = cosign.run("tree", *cosign.registry_flags(secure_registry), ref).stdout
    assert signature_tag(shipped.digest) in tree and attestation_tag(shipped.digest) in tree

    # and a key that did not sign is refused by the same cosign: the checks above mean something
    wrong = cosign.verify(secure_registry, ref, shipped.keys["theirs_pub"], check=False)
    assert wrong.returncode != 0 and "no matching signatures" in wrong.stderr
    wrong = cosign.verify_attestation(secure_registry, ref, shipped.keys["theirs_pub"], check=False)
    assert wrong.returncode != 0


def test_keys_go_both_ways_between_pipeline_and_cosign(
    shipped: Shipped, cosign: Cosign, registry: Registry, secure_registry: Registry
) -> None:
    # a key from `pipeline keys generate` signs with `cosign sign`; cosign and our policy accept it
    digest, build_id = push_image(shipped, registry)
    cosign.sign(registry, f"{registry.host}/{SOURCE}@{digest}", shipped.keys["key"])
    cosign.verify(registry, f"{registry.host}/{SOURCE}@{digest}", shipped.keys["pub"])
    row = promote(shipped, "cosigned", "ourkey", build_id)
    assert row["status"] == "succeeded", row["error"]
    assert str(shipped.keys["pub"]) in row["steps"][0]["message"]

    # a key from `cosign generate-key-pair` (encrypted, COSIGN_PASSWORD) signs in the service
    theirs = parse_config({**shipped.data, "signing": {"key_file": str(shipped.keys["theirs_key"])}})
    row = promote(shipped, "demo", "theirs", shipped.build_id, config=theirs)
    assert row["status"] == "succeeded", row["error"]
    repository = shipped.config.project("demo").environment("theirs").repository
    ref = f"{secure_registry.host}/{repository}@{shipped.digest}"
    verified = payloads(cosign.verify(secure_registry, ref, shipped.keys["theirs_pub"]).stdout)
    assert [p["critical"]["image"]["docker-manifest-digest"] for p in verified] == [shipped.digest]
    assert cosign.verify(secure_registry, ref, shipped.keys["pub"], check=False).returncode != 0


# -- what the real cosign signs, our verify: policy judges ----------------------------------


def push_image(shipped: Shipped, registry: Registry) -> tuple[str, int]:
    """A new small image in the cosigned project's repository and a succeeded build row of it."""
    seed = next(shipped.seeds)
    layout = OciLayout(shipped.tmp / f"oci-{seed}")
    layout.tag("v", layout.image([3_000], seed=seed))
    digest = skopeo_push(layout, "v", registry, SOURCE)
    build_id = succeeded_builds(shipped.db, shipped.config, "cosigned", [digest], first=seed)[0]
    return digest, build_id


def _client(registry: Registry) -> RegistryClient:
    return RegistryClient(RegistryConfig(url=registry.host, insecure=True))


def _put(client: RegistryClient, tag: str, raw: bytes) -> None:
    client.put_manifest(SOURCE, tag, Manifest(raw, "", "sha256:" + hashlib.sha256(raw).hexdigest()))


def _upload(client: RegistryClient, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    client.upload_blob(SOURCE, digest, len(data), [data])
    return digest


def _bundle_referrer(client: RegistryClient, digest: str) -> tuple[str, dict[str, Any]]:
    """(digest, manifest) of the one sigstore bundle cosign 3 left for ``digest``."""
    children = client.manifest(SOURCE, referrers_tag(digest)).children()
    assert [c.get("artifactType") for c in children] == ["application/vnd.dev.sigstore.bundle.v0.3+json"]
    referrer = str(children[0]["digest"])
    return referrer, client.manifest(SOURCE, referrer).json()


def move_signature(client: RegistryClient, layout: str, signed: str, onto: str) -> None:
    """Give ``onto`` the signature cosign made for ``signed``: valid, but for another image."""
    tag = signature_tag if layout == "sig" else referrers_tag
    _put(client, tag(onto), client.manifest(SOURCE, tag(signed)).raw)


def change_annotation(client: RegistryClient, layout: str, digest: str) -> None:
    """Rewrite cosign's ``team=ops`` annotation to ``team=dev`` in what was signed, keeping the
    signature: the bytes the signature covers are no longer the signed ones."""
    if layout == "sig":
        layer = client.manifest(SOURCE, signature_tag(digest)).json()["layers"][0]
        payload = client.read_blob(SOURCE, layer["digest"])
        assert b'"team":"ops"' in payload
        update = append_signature(
            None,
            payload.replace(b'"team":"ops"', b'"team":"dev"'),
            layer["annotations"]["dev.cosignproject.cosign/signature"],
        )
        for blob in update.uploads:
            _upload(client, blob.data)
        _put(client, signature_tag(digest), update.manifest)
        return
    _, manifest = _bundle_referrer(client, digest)
    bundle = json.loads(client.read_blob(SOURCE, manifest["layers"][0]["digest"]))
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert statement["subject"][0]["annotations"] == {"team": "ops"}
    statement["subject"][0]["annotations"] = {"team": "dev"}
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    raw = json.dumps(bundle).encode()
    manifest["layers"][0].update(digest=_upload(client, raw), size=len(raw))
    forged = json.dumps(manifest).encode()
    _put(client, "sha256:" + hashlib.sha256(forged).hexdigest(), forged)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": manifest["mediaType"],
                "size": len(forged),
                "digest": "sha256:" + hashlib.sha256(forged).hexdigest(),
                "artifactType": manifest["artifactType"],
            }
        ],
    }
    _put(client, referrers_tag(digest), json.dumps(index).encode())


@pytest.mark.parametrize("case", CASES)
def test_real_cosign_signatures_are_judged_by_our_verify_policy(
    case: str, shipped: Shipped, cosign: Cosign, registry: Registry, secure_registry: Registry, tmp_path: Path
) -> None:
    digest, build_id = push_image(shipped, registry)
    ref = f"{registry.host}/{SOURCE}@{digest}"
    theirs, words = shipped.keys["theirs_key"], "verifies with"
    with _client(registry) as client:
        if case == "accepted":
            cosign.sign(registry, ref, theirs)
        elif case == "other-key":
            cosign.run("generate-key-pair", "--output-key-prefix", "stranger", cwd=tmp_path)
            cosign.sign(registry, ref, tmp_path / "stranger.key")
            words = "does not verify with any of the keys"
        elif case == "other-image":
            other, _ = push_image(shipped, registry)
            cosign.sign(registry, f"{registry.host}/{SOURCE}@{other}", theirs)
            move_signature(client, cosign.layout, other, digest)
            words = f"signs {other}, not {digest} (digest mismatch)"
        else:
            cosign.sign(registry, ref, theirs, "-a", "team=ops")
            cosign.verify(registry, ref, shipped.keys["theirs_pub"], "-a", "team=ops")  # as cosign left it
            change_annotation(client, cosign.layout, digest)
            words = "does not verify with any of the keys"
        if cosign.layout == "bundle":  # cosign 3: no .sig tag, one bundle among the referrers
            assert client.find_manifest(SOURCE, signature_tag(digest)) is None
            assert client.referrers(SOURCE, digest)[0]

    row = promote(shipped, "cosigned", case, build_id)
    repository = shipped.config.project("cosigned").environment(case).repository
    target = f"{secure_registry.host}/{repository}@{digest}"
    layout_words = "sigstore bundle" if cosign.layout == "bundle" else "layer 0"
    if case == "accepted":
        assert row["status"] == "succeeded", row["error"]
        message = row["steps"][0]["message"]
        assert words in message and layout_words in message and str(shipped.keys["theirs_pub"]) in message
        # the signature travelled: the same cosign verifies it at the target, nothing else done
        verified = payloads(cosign.verify(secure_registry, target, shipped.keys["theirs_pub"]).stdout)
        assert [p["critical"]["image"]["docker-manifest-digest"] for p in verified] == [digest]
        assert crane_digest(secure_registry, f"{secure_registry.host}/{repository}:{case}") == digest
        return
    assert row["status"] == "rejected", row["error"]
    assert [(s["kind"], s["status"]) for s in row["steps"]] == [("verify-signature", "refused")]
    assert words in row["error"] and layout_words in row["error"], row["error"]
    assert str(shipped.keys["theirs_pub"]) in row["error"]
    with RegistryClient(shipped.config.registries["private"]) as client:  # nothing moved
        assert client.find_manifest(repository, case) is None
        assert client.find_manifest(repository, digest) is None
        assert client.find_manifest(repository, signature_tag(digest)) is None


def crane_digest(registry: Registry, ref: str) -> str:
    """What crane (an independent client) says a reference points at."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(registry.base_dir),
        "SSL_CERT_FILE": str(registry.ca_file),
        "DOCKER_CONFIG": str(registry.base_dir / "crane-docker"),
    }
    config = Path(env["DOCKER_CONFIG"])
    config.mkdir(exist_ok=True)
    if registry.users:
        auth = base64.b64encode(str(registry.creds()).encode()).decode()
        (config / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    done = subprocess.run(
        [tool("crane"), "digest", ref], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
