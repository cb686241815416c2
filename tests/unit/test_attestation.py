"""SLSA provenance as a cosign attestation: the statement, DSSE, the ``.att`` image."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from pipeline import builder
from pipeline.build import provenance_for as _provenance
from pipeline.config import parse_config
from pipeline.errors import SigningError
from pipeline.signing import (
    CONFIG_MEDIA_TYPE,
    DSSE_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    SIGNATURE_ANNOTATION,
    SLSA_PROVENANCE_V1,
    append_attestation,
    attestation_tag,
    dsse_envelope,
    dsse_pae,
    envelope_statement,
    provenance_statement,
    signature_config,
    source_uri,
    statement_bytes,
    verify_attestation_manifest,
    verify_envelope,
)
from pipeline.store import Build
from tests import project

DIGEST = "sha256:" + "ab" * 32
COMMIT = "0123456789abcdef0123456789abcdef01234567"
START = dt.datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=dt.UTC)
END = dt.datetime(2026, 3, 4, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=2)))


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _statement(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "repository": "localhost:5000/acme/demo:main-0123456",
        "digest": DIGEST,
        "ref": "refs/heads/main",
        "source_repo": "https://x-access-token:ghp_s3cr3t@github.com/acme/demo.git",
        "commit": COMMIT,
        "dockerfile": "docker/Dockerfile",
        "build_args": {"GREETING": "hi", "A": "1"},
        "build_id": 42,
        "started_on": START,
        "finished_on": END,
        "engine": "tcp://10.0.0.5:2375",
        "builder_mode": "buildx",
        "context": "app",
        "target": "runtime",
        "platforms": ["linux/amd64", "linux/arm64"],
    }
    values.update(changes)
    return provenance_statement(**values)


# -- the statement ----------------------------------------------------------------------------


def test_statement_is_in_toto_v1_with_slsa_provenance_v1() -> None:
    statement = _statement()
    assert list(statement) == ["_type", "subject", "predicateType", "predicate"]
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["subject"] == [{"name": "localhost:5000/acme/demo", "digest": {"sha256": "ab" * 32}}]
    definition = statement["predicate"]["buildDefinition"]
    assert definition["buildType"] == "urn:pipeline:buildtype:buildkit-dockerfile:v1"
    assert definition["externalParameters"] == {
        "source": "https://github.com/acme/demo.git",
        "ref": "refs/heads/main",
        "context": "app",
        "dockerfile": "docker/Dockerfile",
        "target": "runtime",
        "buildArgs": {"A": "1", "GREETING": "hi"},
        "platforms": ["linux/amd64", "linux/arm64"],
    }
    assert definition["resolvedDependencies"] == [
        {"uri": "git+https://github.com/acme/demo.git@refs/heads/main", "digest": {"gitCommit": COMMIT}}
    ]
    run = statement["predicate"]["runDetails"]
    assert run["builder"] == {"id": "urn:pipeline:builder:tcp%3A%2F%2F10.0.0.5%3A2375", "version": {"mode": "buildx"}}
    assert run["metadata"] == {
        "invocationId": "42",
        "startedOn": "2026-03-04T05:06:07Z",
        "finishedOn": "2026-03-04T05:08:09Z",
    }
    assert "ghp_s3cr3t" not in json.dumps(statement) and "x-access-token" not in json.dumps(statement)


def test_statement_defaults_and_docker_hub_names() -> None:
    statement = _statement(repository="docker.io/acme/demo", target=None, platforms=[], builder_mode=None)
    assert statement["subject"][0]["name"] == "index.docker.io/acme/demo"
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["target"] is None
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["platforms"] == []
    assert "version" not in statement["predicate"]["runDetails"]["builder"]


@pytest.mark.parametrize(
    "changes", [{"digest": "sha256:ABC"}, {"commit": "main"}, {"started_on": dt.datetime(2026, 1, 1)}]
)
def test_statement_refuses_what_is_not_an_image_commit_or_aware_time(changes: dict[str, Any]) -> None:
    with pytest.raises(SigningError):
        _statement(**changes)


@pytest.mark.parametrize(
    ("given", "public"),
    [
        ("https://user:pa55@git.example.com/a/b.git?private_token=x#frag", "https://git.example.com/a/b.git"),
        ("https://git.example.com/a/b.git", "https://git.example.com/a/b.git"),
        ("ssh://git@git.example.com:2222/a/b.git", "ssh://git.example.com:2222/a/b.git"),
        ("git@github.com:acme/demo.git", "ssh://github.com/acme/demo.git"),
        ("file:///srv/git/demo.git", "file:///srv/git/demo.git"),
        ("/srv/git/demo.git", "file:///srv/git/demo.git"),
    ],
)
def test_source_uri_carries_no_credentials(given: str, public: str) -> None:
    assert source_uri(given) == public


def test_a_build_with_a_buildkit_secret_never_shows_it(tmp_path: Path) -> None:
    """Built the way the build stage builds it: the spec holds the secret's value, the statement does not."""
    data = project.config_data(
        data_dir=tmp_path,
        registry_host="localhost:5000",
        engine_host="tcp://e:2375",
        repo_url="https://bot:repo-token-77@git.example.com/acme/demo.git",
        secrets=[{"id": "npm_token", "env": "DEMO_NPM_TOKEN"}],
    )
    config = parse_config(data)
    demo = config.projects["demo"]
    build = Build(
        id=9, project="demo", commit=COMMIT, ref="refs/heads/main", branch="main", trigger="test", started_at=START
    )
    spec = builder.BuildSpec(
        context_dir=tmp_path,
        dockerfile=tmp_path / "Dockerfile",
        refs=["x:y"],
        args={"GREETING": "hello-from-args"},
        secrets={"npm_token": "tok-9f8e7d6c5b"},
        registry="localhost:5000",
        credentials=("builder", "reg-pa55"),
    )
    engine = builder.Engine(cli="docker", mode="buildx", host="tcp://e:2375")
    statement = _provenance(demo, build, spec, engine, DIGEST)
    text = json.dumps(statement)
    for leak in ("tok-9f8e7d6c5b", "npm_token", "DEMO_NPM_TOKEN", "repo-token-77", "reg-pa55", "bot"):
        assert leak not in text
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["buildArgs"] == {
        "GREETING": "hello-from-args"
    }
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["dockerfile"] == "Dockerfile"
    assert statement["predicate"]["runDetails"]["metadata"]["startedOn"] == "2026-03-04T05:06:07Z"


# -- DSSE -------------------------------------------------------------------------------------


def test_pae_known_answers_from_the_dsse_spec() -> None:
    # The DSSE protocol document's example, lengths counted by hand: 29 bytes of type, 11 of body.
    assert (
        dsse_pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    # "application/vnd.in-toto+json" is 11 + 1 + 16 = 28 bytes; {"é":1} is 7 characters but 8 bytes
    assert (
        dsse_pae("application/vnd.in-toto+json", '{"é":1}'.encode())
        == b'DSSEv1 28 application/vnd.in-toto+json 8 {"\xc3\xa9":1}'
    )
    assert dsse_pae("", b"") == b"DSSEv1 0  0 "


def test_envelope_is_what_sigstore_writes_and_its_signature_is_over_the_pae(key: ec.EllipticCurvePrivateKey) -> None:
    statement = _statement()
    envelope = dsse_envelope(statement, key)
    assert b" " not in envelope and not envelope.endswith(b"\n")
    data = json.loads(envelope)
    assert list(data) == ["payloadType", "payload", "signatures"]
    assert data["payloadType"] == "application/vnd.in-toto+json"
    payload = base64.b64decode(data["payload"])
    assert payload == statement_bytes(statement)
    assert payload == json.dumps(statement, separators=(",", ":")).encode()
    assert len(data["signatures"]) == 1 and list(data["signatures"][0]) == ["keyid", "sig"]
    assert data["signatures"][0]["keyid"] == ""
    pae = b"DSSEv1 28 application/vnd.in-toto+json %d " % len(payload) + payload
    key.public_key().verify(base64.b64decode(data["signatures"][0]["sig"]), pae, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):  # not over the bare payload: over the PAE
        key.public_key().verify(base64.b64decode(data["signatures"][0]["sig"]), payload, ec.ECDSA(hashes.SHA256()))


def _tampered(envelope: bytes, **changes: Any) -> bytes:
    data = json.loads(envelope)
    data.update(changes)
    return json.dumps(data).encode()


def test_verify_round_trip_and_tampering(key: ec.EllipticCurvePrivateKey) -> None:
    statement = _statement()
    envelope = dsse_envelope(statement, key)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert verify_envelope(envelope, [key.public_key()]) == statement
    assert verify_envelope(envelope, [other, key.public_key()]) == statement
    assert verify_envelope(envelope, [other]) is None
    assert verify_envelope(envelope, []) is None
    forged = dict(statement, subject=[{"name": "localhost:5000/acme/demo", "digest": {"sha256": "cd" * 32}}])
    payload = base64.b64encode(statement_bytes(forged)).decode()
    assert verify_envelope(_tampered(envelope, payload=payload), [key.public_key()]) is None
    assert verify_envelope(_tampered(envelope, payloadType="application/json"), [key.public_key()]) is None
    signature = json.loads(envelope)["signatures"][0]["sig"]
    flipped = base64.b64encode(bytes([base64.b64decode(signature)[0] ^ 1]) + base64.b64decode(signature)[1:]).decode()
    assert verify_envelope(_tampered(envelope, signatures=[{"keyid": "", "sig": flipped}]), [key.public_key()]) is None
    assert verify_envelope(b"not json", [key.public_key()]) is None
    assert verify_envelope(b"[]", [key.public_key()]) is None
    assert envelope_statement(envelope) == statement  # unverified read still parses


# -- the .att image ---------------------------------------------------------------------------


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_new_att_manifest_has_one_dsse_layer_annotated_like_cosign(key: ec.EllipticCurvePrivateKey) -> None:
    assert attestation_tag(DIGEST) == "sha256-" + "ab" * 32 + ".att"
    envelope = dsse_envelope(_statement(), key)
    update = append_attestation(None, envelope)
    assert update.changed and update.media_type == MANIFEST_MEDIA_TYPE
    manifest = json.loads(update.manifest)
    assert manifest == {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "size": len(update.config or b""),
            "digest": _sha(update.config or b""),
        },
        "layers": [
            {
                "mediaType": DSSE_MEDIA_TYPE,
                "size": len(envelope),
                "digest": _sha(envelope),
                "annotations": {SIGNATURE_ANNOTATION: "", "predicateType": SLSA_PROVENANCE_V1},
            }
        ],
    }
    assert update.config == signature_config([_sha(envelope)])
    assert {blob.digest: blob.data for blob in update.uploads} == {
        _sha(envelope): envelope,
        _sha(update.config or b""): update.config,
    }


def test_append_keeps_other_layers_and_is_idempotent(key: ec.EllipticCurvePrivateKey) -> None:
    first = dsse_envelope(_statement(), key)
    other = dsse_envelope(_statement(build_id=43), key)
    one = append_attestation(None, first)
    two = append_attestation(one.manifest, other, predicate_type="https://spdx.dev/Document")
    layers = json.loads(two.manifest)["layers"]
    assert [layer["digest"] for layer in layers] == [_sha(first), _sha(other)]
    assert layers[1]["annotations"]["predicateType"] == "https://spdx.dev/Document"
    assert json.loads(two.config or b"")["rootfs"]["diff_ids"] == [_sha(first), _sha(other)]
    assert {blob.digest for blob in two.uploads} == {_sha(other), _sha(two.config or b"")}
    again = append_attestation(two.manifest, first)
    assert not again.changed and again.manifest == two.manifest and again.uploads == ()


def test_append_refuses_what_is_not_an_envelope_or_a_manifest(key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(SigningError, match="not a DSSE envelope"):
        append_attestation(None, b'{"payloadType":"x"}')
    with pytest.raises(SigningError, match="not JSON"):
        append_attestation(b"<html>", dsse_envelope(_statement(), key))


def test_verify_attestation_manifest(key: ec.EllipticCurvePrivateKey) -> None:
    ours = dsse_envelope(_statement(), key)
    stranger = dsse_envelope(_statement(), ec.generate_private_key(ec.SECP256R1()))
    elsewhere = dsse_envelope(_statement(digest="sha256:" + "cd" * 32), key)
    manifest = append_attestation(None, stranger).manifest
    for envelope in (elsewhere, ours):
        manifest = append_attestation(manifest, envelope).manifest
    blobs = {_sha(e): e for e in (ours, stranger, elsewhere)}
    found = verify_attestation_manifest(manifest, blobs.__getitem__, DIGEST, [key.public_key()])
    assert [(v.layer_index, v.layer_digest, v.key_index) for v in found] == [(2, _sha(ours), 0)]
    assert found[0].statement["subject"][0]["digest"]["sha256"] == "ab" * 32
    assert (
        verify_attestation_manifest(
            manifest, blobs.__getitem__, DIGEST, [key.public_key()], predicate_type="https://spdx.dev/Document"
        )
        == []
    )
    swapped = {**blobs, _sha(ours): stranger}  # a blob that is not what its descriptor names
    assert verify_attestation_manifest(manifest, swapped.__getitem__, DIGEST, [key.public_key()]) == []
