"""Cosign-compatible signing, pinned to bytes the real cosign produced.

``tests/data/cosign/vectors.json`` and the two ``.key`` files are signatures and encrypted keys
made by cosign (see their ``source`` fields); ``sig-manifests.json`` holds ``.sig`` manifests
cosign pushed. Every scrypt run costs ~64 MB and a fraction of a second, so keys are decrypted
once per module and malformed key files are made to fail before the KDF runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.secret
import pytest
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from typer.testing import CliRunner

from pipeline.cli import _keys as cli_keys
from pipeline.cli._keys import keys_app
from pipeline.errors import SigningError
from pipeline.signing import (
    MANIFEST_MEDIA_TYPE,
    PASSWORD_ENV,
    SIGNATURE_ANNOTATION,
    append_signature,
    decrypt_private_key,
    generate_key_pair,
    load_private_key,
    load_public_key,
    normalize_reference,
    parse_payload,
    password_from_env,
    public_key_from_pem,
    public_key_pem,
    sign_payload,
    signature_config,
    signature_tag,
    simple_signing_payload,
    verify_payload,
    verify_signature_manifest,
)
from pipeline.signing._keys import _envelope, _pem

DATA = Path(__file__).resolve().parent.parent / "data" / "cosign"
VECTORS = json.loads((DATA / "vectors.json").read_text())
CAPTURES = json.loads((DATA / "sig-manifests.json").read_text())
SIGNED = VECTORS["vectors"]
KEY_FILES = sorted(VECTORS["keys"])
COSIGN_SIG = CAPTURES["manifests"][0]  # cosign 3.0.4 `sign --key`, with its public key
DIGEST = "sha256:" + "ab" * 32


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def _claims(payload: bytes) -> tuple[str, str]:
    critical = json.loads(payload)["critical"]
    return critical["identity"]["docker-reference"], critical["image"]["docker-manifest-digest"]


@pytest.fixture(scope="module")
def vector_keys() -> dict[str, ec.EllipticCurvePrivateKey]:
    """Both cosign-made keys, decrypted once (one scrypt run each)."""
    return {name: load_private_key(DATA / name, VECTORS["keys"][name]["password"].encode()) for name in KEY_FILES}


# --- signatures made by cosign ------------------------------------------------------------


@pytest.mark.parametrize("vector", SIGNED, ids=[v["name"] for v in SIGNED])
def test_cosign_signatures_verify_and_any_changed_byte_breaks_them(vector: dict[str, str]) -> None:
    key = public_key_from_pem(vector["public_key_pem"].encode())
    payload, signature = vector["payload"].encode(), vector["signature_b64"]
    assert verify_payload(key, payload, signature)
    der = base64.b64decode(signature)
    for index in range(len(payload)):
        assert not verify_payload(key, _flip(payload, index), signature), f"payload byte {index}"
    for index in range(len(der)):
        flipped = base64.b64encode(_flip(der, index)).decode()
        assert not verify_payload(key, payload, flipped), f"signature byte {index}"


def test_garbage_signatures_are_false_not_errors() -> None:
    vector = SIGNED[0]
    key = public_key_from_pem(vector["public_key_pem"].encode())
    payload = vector["payload"].encode()
    for signature in ("", "not base64!", "AAAA", vector["signature_b64"][:-4]):
        assert verify_payload(key, payload, signature) is False
    other = public_key_from_pem(SIGNED[1]["public_key_pem"].encode())
    assert not verify_payload(other, payload, vector["signature_b64"])


def test_signed_manifest_is_what_the_payload_names() -> None:
    vector = SIGNED[0]
    assert _sha256(vector["signed_manifest"].encode()) == _claims(vector["payload"].encode())[1]


@pytest.mark.parametrize("vector", [*SIGNED, COSIGN_SIG], ids=[*(v["name"] for v in SIGNED), "cosign 3"])
def test_our_payload_bytes_equal_cosigns(vector: dict[str, str]) -> None:
    payload = vector["payload"].encode()
    reference, digest = _claims(payload)
    assert simple_signing_payload(reference, digest) == payload
    assert simple_signing_payload(reference, digest, {}) == payload
    assert parse_payload(payload)["critical"]["image"]["docker-manifest-digest"] == digest


# --- payload -----------------------------------------------------------------------------


def test_payload_annotations_sorted_and_escaped_like_go() -> None:
    annotations = {"z": "a<b>&c", "env": "prod", "note": 'é ✓ \u2028\u2029 "q" \n'}
    payload = simple_signing_payload("ghcr.io/acme/app:1.2", DIGEST, annotations)
    assert (
        payload
        == (
            '{"critical":{"identity":{"docker-reference":"ghcr.io/acme/app"},'
            f'"image":{{"docker-manifest-digest":"{DIGEST}"}},'
            '"type":"cosign container image signature"},'
            '"optional":{"env":"prod","note":"é ✓ \\u2028\\u2029 \\"q\\" \\n",'
            '"z":"a\\u003cb\\u003e\\u0026c"}}'
        ).encode()
    )
    assert parse_payload(payload)["optional"]["z"] == "a<b>&c"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ubuntu", "index.docker.io/library/ubuntu"),
        ("ubuntu:24.04", "index.docker.io/library/ubuntu"),
        ("acme/app", "index.docker.io/acme/app"),
        ("docker.io/acme/app:v1", "index.docker.io/acme/app"),
        ("docker.io/ubuntu", "index.docker.io/library/ubuntu"),
        ("index.docker.io/library/ubuntu", "index.docker.io/library/ubuntu"),
        ("ghcr.io/acme/app@" + DIGEST, "ghcr.io/acme/app"),
        ("ghcr.io/acme/app:v1@" + DIGEST, "ghcr.io/acme/app"),
        ("localhost:5000/team/app:latest", "localhost:5000/team/app"),
        ("192.168.64.2:5000/cosign-signed/key-1", "192.168.64.2:5000/cosign-signed/key-1"),
        ("localhost/app", "index.docker.io/localhost/app"),  # as go-containerregistry (cosign) reads it
    ],
)
def test_normalize_reference(given: str, expected: str) -> None:
    assert normalize_reference(given) == expected


@pytest.mark.parametrize("bad", ["", "ghcr.io/", "ghcr.io/Acme/App", "ghcr.io//app", "a b"])
def test_normalize_reference_refuses_non_repositories(bad: str) -> None:
    with pytest.raises(SigningError):
        normalize_reference(bad)


@pytest.mark.parametrize("digest", ["sha256:abc", "sha256:" + "AB" * 32, "sha512:" + "ab" * 64, "ab" * 32])
def test_payload_refuses_non_sha256_digests(digest: str) -> None:
    with pytest.raises(SigningError, match="not an image digest"):
        simple_signing_payload("ghcr.io/acme/app", digest)


COSIGN_TYPE = b'"type":"cosign container image signature"'
A_DIGEST = b'"image":{"docker-manifest-digest":"sha256:x"}'


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\xff\xfe",
        b"[]",
        b"null",
        b'{"critical":1}',
        b'{"critical":{' + A_DIGEST + b"}}",
        b'{"critical":{"type":"atomic container signature",' + A_DIGEST + b"}}",
        b'{"critical":{' + COSIGN_TYPE + b',"image":{}}}',
        b'{"critical":{' + COSIGN_TYPE + b',"image":{"docker-manifest-digest":1}}}',
        b'{"critical":{' + COSIGN_TYPE + b"," + A_DIGEST + b'},"optional":[]}',
    ],
)
def test_parse_payload_refuses_garbage(garbage: bytes) -> None:
    with pytest.raises(SigningError, match="payload"):
        parse_payload(garbage)


# --- keys --------------------------------------------------------------------------------


def test_cosign_keys_decrypt_to_p256_keys(
    vector_keys: dict[str, ec.EllipticCurvePrivateKey],
) -> None:
    for name, key in vector_keys.items():
        assert isinstance(key.curve, ec.SECP256R1), name
        payload = simple_signing_payload("ghcr.io/acme/app", DIGEST)
        assert verify_payload(key.public_key(), payload, sign_payload(key, payload))
    spki = (
        vector_keys["cosign-generated-empty-password.key"]
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    expected = VECTORS["keys"]["cosign-generated-empty-password.key"]["public_key_spki_b64"]
    assert base64.b64encode(spki).decode() == expected


@pytest.mark.parametrize("name", KEY_FILES)
def test_wrong_password_names_the_file(name: str) -> None:
    with pytest.raises(SigningError, match=rf"{name}: wrong password") as caught:
        load_private_key(DATA / name, b"not the password")
    assert PASSWORD_ENV in caught.value.message


def _vector_key_parts(name: str) -> tuple[str, dict[str, Any]]:
    text = (DATA / name).read_text()
    label = text.splitlines()[0].removeprefix("-----BEGIN ").removesuffix("-----")
    body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
    return label, json.loads(base64.b64decode(body))


@pytest.mark.parametrize("name", KEY_FILES)
def test_our_key_file_writer_reproduces_cosigns_bytes(name: str) -> None:
    label, envelope = _vector_key_parts(name)
    kdf, cipher = envelope["kdf"], envelope["cipher"]
    body = _envelope(
        kdf["params"]["N"],
        base64.b64decode(kdf["salt"]),
        base64.b64decode(cipher["nonce"]),
        base64.b64decode(envelope["ciphertext"]),
    )
    assert _pem(label, body) == (DATA / name).read_bytes()


def _pem_text(label: str, body: bytes) -> bytes:
    lines = textwrap.wrap(base64.b64encode(body).decode(), 64)
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]).encode()


SIGSTORE_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"


def _tampered(mutate: Callable[[dict[str, Any]], None]) -> bytes:
    _, envelope = _vector_key_parts("cosign-generated-empty-password.key")
    mutate(envelope)
    return _pem_text(SIGSTORE_LABEL, json.dumps(envelope).encode())


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(envelope: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = envelope
        for part in parents:
            target = target[part]
        target[last] = value

    return mutate


@pytest.mark.parametrize(
    ("key_bytes", "message"),
    [
        (b"hello", "no PEM block"),
        (_pem_text("PUBLIC KEY", b"x"), "not a cosign private key"),
        (f"-----BEGIN {SIGSTORE_LABEL}-----\n!!!!\n-----END {SIGSTORE_LABEL}-----\n".encode(), "not valid base64"),
        (_pem_text(SIGSTORE_LABEL, b"{not json"), "not cosign's JSON envelope"),
        (_pem_text(SIGSTORE_LABEL, b"[1]"), "not cosign's JSON envelope"),
        (_tampered(_set("kdf.name", "argon2")), "key derivation 'argon2' is not supported"),
        (_tampered(_set("cipher.name", "aes-gcm")), "cipher 'aes-gcm' is not supported"),
        (_tampered(_set("kdf.params.N", 16384)), "N=16384"),
        (_tampered(_set("kdf.params.N", 1 << 20)), "N=1048576"),
        (_tampered(_set("kdf.params.r", 4)), "r=4"),
        (_tampered(_set("kdf.params.p", 2)), "p=2"),
        (_tampered(_set("kdf.params.N", "65536")), "'N' is missing or malformed"),
        (_tampered(_set("kdf.salt", "%%%")), "'salt' is not valid base64"),
        (_tampered(_set("cipher.nonce", base64.b64encode(b"short").decode())), "nonce is 5 bytes"),
        (_tampered(_set("ciphertext", None)), "'ciphertext' is missing"),
        (_tampered(lambda e: e.pop("kdf")), "'kdf' is missing"),
    ],
)
def test_malformed_key_files_fail_clearly(tmp_path: Path, key_bytes: bytes, message: str) -> None:
    path = tmp_path / "cosign.key"
    path.write_bytes(key_bytes)
    with pytest.raises(SigningError, match=message) as caught:
        load_private_key(path, b"")
    assert str(path) in caught.value.message


def test_password_comes_from_cosign_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(SigningError, match=f"{PASSWORD_ENV} is not set"):
        password_from_env()
    with pytest.raises(SigningError, match=f"{PASSWORD_ENV} is not set"):
        load_private_key(DATA / "cosign-generated-empty-password.key")
    monkeypatch.setenv(PASSWORD_ENV, "")
    assert password_from_env() == b""
    monkeypatch.setenv(PASSWORD_ENV, "pässword")
    assert password_from_env() == "pässword".encode()


def test_non_p256_keys_are_refused(tmp_path: Path) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    der = p384.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt, nonce = os.urandom(32), os.urandom(24)
    box_key = Scrypt(salt=salt, length=32, n=32768, r=8, p=1).derive(b"pw")
    ciphertext = nacl.secret.SecretBox(box_key).encrypt(der, nonce).ciphertext
    encrypted = _pem(SIGSTORE_LABEL, _envelope(32768, salt, nonce, ciphertext))
    with pytest.raises(SigningError, match="secp384r1 is not supported"):
        decrypt_private_key(encrypted, b"pw", "p384.key")

    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    for name, public in (("p384.pub", p384.public_key()), ("ed.pub", ed)):
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        (tmp_path / name).write_bytes(pem)
        with pytest.raises(SigningError, match=rf"{name}: .* is not supported"):
            load_public_key(tmp_path / name)
    (tmp_path / "junk.pub").write_text("junk")
    with pytest.raises(SigningError, match="junk.pub: not a PEM public key"):
        load_public_key(tmp_path / "junk.pub")


def test_generate_load_sign_verify_round_trip(tmp_path: Path) -> None:
    key_path, pub_path = generate_key_pair(tmp_path / "keys", b"correct horse")
    assert (key_path.name, pub_path.name) == ("cosign.key", "cosign.pub")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600

    text = key_path.read_text()
    assert text.startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    assert all(len(line) <= 64 for line in text.splitlines())
    body = base64.b64decode("".join(text.splitlines()[1:-1]))
    envelope = json.loads(body)
    assert body == json.dumps(envelope, separators=(",", ":")).encode()  # compact, as Go writes it
    _, cosigns = _vector_key_parts("cosign-generated-empty-password.key")
    assert list(envelope) == list(cosigns) and list(envelope["kdf"]) == list(cosigns["kdf"])
    assert envelope["kdf"]["params"] == {"N": 65536, "r": 8, "p": 1}
    assert len(base64.b64decode(envelope["kdf"]["salt"])) == 32
    assert len(base64.b64decode(envelope["cipher"]["nonce"])) == 24

    key = load_private_key(key_path, b"correct horse")
    public = load_public_key(pub_path)
    assert public_key_pem(public) == pub_path.read_bytes() == public_key_pem(key.public_key())
    payload = simple_signing_payload("ghcr.io/acme/app", DIGEST)
    assert verify_payload(public, payload, sign_payload(key, payload))


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "cosign.pub").write_text("keep me")
    with pytest.raises(SigningError, match="cosign.pub already exists"):
        generate_key_pair(tmp_path, b"")
    assert not (tmp_path / "cosign.key").exists()
    assert (tmp_path / "cosign.pub").read_text() == "keep me"


def test_generate_into_an_unwritable_place_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SigningError, match="cannot write the key pair"):
        generate_key_pair(tmp_path / "file" / "keys", b"")


# --- the .sig image ----------------------------------------------------------------------


def test_signature_tag() -> None:
    assert signature_tag(DIGEST) == "sha256-" + "ab" * 32 + ".sig"
    with pytest.raises(SigningError):
        signature_tag("latest")


@pytest.mark.parametrize("capture", CAPTURES["manifests"], ids=[c["name"] for c in CAPTURES["manifests"]])
def test_new_sig_manifest_equals_cosigns_bytes(capture: dict[str, Any]) -> None:
    payload = capture["payload"].encode()
    update = append_signature(None, payload, capture["signature_b64"])
    assert update.changed and update.media_type == MANIFEST_MEDIA_TYPE
    assert update.manifest == capture["manifest"].encode()
    assert update.config is not None
    assert len(update.config) == capture["config_size"]
    assert _sha256(update.config) == capture["config_digest"]
    assert [(b.digest, b.data) for b in update.uploads] == [
        (capture["config_digest"], update.config),
        (_sha256(payload), payload),
    ]
    if "manifest_digest" in capture:
        assert _sha256(update.manifest) == capture["manifest_digest"]


@pytest.mark.parametrize("capture", CAPTURES["configs"], ids=[c["name"] for c in CAPTURES["configs"]])
def test_config_equals_cosigns_digest(capture: dict[str, Any]) -> None:
    assert _sha256(capture["payload"].encode()) == capture["layer_digest"]
    config = signature_config([capture["layer_digest"]])
    assert (len(config), _sha256(config)) == (capture["config_size"], capture["config_digest"])


def _store(*payloads: bytes) -> Callable[[str], bytes]:
    blobs = {_sha256(p): p for p in payloads}
    return lambda digest: blobs[digest]


def test_cosign_sig_manifest_verifies() -> None:
    key = public_key_from_pem(COSIGN_SIG["public_key_pem"].encode())
    manifest, payload = COSIGN_SIG["manifest"].encode(), COSIGN_SIG["payload"].encode()
    image, store = COSIGN_SIG["image_digest"], _store(payload)
    found = verify_signature_manifest(manifest, store, image, [key])
    assert [(v.layer_index, v.layer_digest, v.key_index) for v in found] == [(0, _sha256(payload), 0)]
    assert found[0].payload == json.loads(payload)

    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert verify_signature_manifest(manifest, store, image, [other]) == []
    assert verify_signature_manifest(manifest, store, DIGEST, [key]) == []
    assert verify_signature_manifest(manifest, store, image, [key], required_annotations={"env": "prod"}) == []

    def lying_registry(digest: str) -> bytes:
        return payload.replace(b"tobby", b"bobby")

    assert verify_signature_manifest(manifest, lying_registry, image, [key]) == []


def test_append_keeps_layers_and_is_idempotent() -> None:
    cosign_key = public_key_from_pem(COSIGN_SIG["public_key_pem"].encode())
    image, existing = COSIGN_SIG["image_digest"], COSIGN_SIG["manifest"].encode()
    ours = ec.generate_private_key(ec.SECP256R1())
    payload = simple_signing_payload("ghcr.io/acme/app", image, {"env": "prod"})
    signature = sign_payload(ours, payload)

    update = append_signature(existing, payload, signature)
    assert update.changed and update.config is not None
    manifest = json.loads(update.manifest)
    assert manifest["layers"][0] == json.loads(existing)["layers"][0]
    assert manifest["layers"][1] == {
        "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
        "size": len(payload),
        "digest": _sha256(payload),
        "annotations": {SIGNATURE_ANNOTATION: signature},
    }
    assert manifest["config"] == {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "size": len(update.config),
        "digest": _sha256(update.config),
    }
    config = json.loads(update.config)
    assert config["rootfs"]["diff_ids"] == [layer["digest"] for layer in manifest["layers"]]
    assert len(config["history"]) == 2
    assert [b.digest for b in update.uploads] == [_sha256(update.config), _sha256(payload)]

    again = append_signature(update.manifest, payload, signature)
    assert (again.changed, again.manifest, again.config, again.uploads) == (False, update.manifest, None, ())
    cosigns_again = append_signature(existing, COSIGN_SIG["payload"].encode(), COSIGN_SIG["signature_b64"])
    assert (cosigns_again.changed, cosigns_again.manifest) == (False, existing)

    store = _store(payload, COSIGN_SIG["payload"].encode())
    keys = [ours.public_key(), cosign_key]
    found = verify_signature_manifest(update.manifest, store, image, keys)
    assert [(v.layer_index, v.key_index) for v in found] == [(0, 1), (1, 0)]
    found = verify_signature_manifest(update.manifest, store, image, keys, required_annotations={"env": "prod"})
    assert [(v.layer_index, v.key_index) for v in found] == [(1, 0)]


@pytest.mark.parametrize(
    "existing",
    [
        b"nope",
        b"[]",
        b'{"layers":{}}',
        b'{"layers":[{"digest":"sha256:x"}]}',
        b'{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}',
    ],
)
def test_append_refuses_a_broken_existing_manifest(existing: bytes) -> None:
    with pytest.raises(SigningError, match="existing signature manifest"):
        append_signature(existing, simple_signing_payload("ghcr.io/acme/app", DIGEST), "c2ln")


def test_append_refuses_a_payload_that_is_not_one() -> None:
    with pytest.raises(SigningError, match="payload"):
        append_signature(None, b'{"hello":"world"}', "c2ln")


def test_verify_skips_broken_layers_and_keeps_registry_errors() -> None:
    key = public_key_from_pem(COSIGN_SIG["public_key_pem"].encode())
    payload = COSIGN_SIG["payload"].encode()
    good = json.loads(COSIGN_SIG["manifest"])["layers"][0]
    unsigned = {**good, "annotations": {}}
    wrong_size = {**good, "size": good["size"] + 1}
    layers = ["junk", {"digest": "md5:x"}, unsigned, wrong_size, good]
    manifest = json.dumps({"layers": layers}).encode()
    found = verify_signature_manifest(manifest, _store(payload), COSIGN_SIG["image_digest"], [key])
    assert [v.layer_index for v in found] == [4]

    def registry_down(digest: str) -> bytes:
        raise ConnectionError("registry down")

    with pytest.raises(ConnectionError):
        verify_signature_manifest(manifest, registry_down, COSIGN_SIG["image_digest"], [key])
    with pytest.raises(SigningError):
        verify_signature_manifest(b"<html>", _store(payload), COSIGN_SIG["image_digest"], [key])


# --- CLI ---------------------------------------------------------------------------------


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(keys_app, name="keys")
    return app


def test_cli_generate_writes_a_pair_that_loads(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _cli(), ["keys", "generate", "--output-dir", str(tmp_path)], env={PASSWORD_ENV: "s3cret"}
    )
    assert result.exit_code == 0, result.output
    key_path, pub_path = tmp_path / "cosign.key", tmp_path / "cosign.pub"
    assert f"Private key written to {key_path}" in result.output
    assert f"Public key written to {pub_path}" in result.output
    command = f"cosign verify --key {pub_path} --insecure-ignore-tlog=true IMAGE@DIGEST"
    assert command in result.output
    key = load_private_key(key_path, b"s3cret")
    assert public_key_pem(key.public_key()) == pub_path.read_bytes()


def test_cli_prompts_twice_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Path, bytes]] = []

    def fake_generate(directory: Path, password: bytes) -> tuple[Path, Path]:
        seen.append((directory, password))
        return directory / "cosign.key", directory / "cosign.pub"

    monkeypatch.setattr(cli_keys, "generate_key_pair", fake_generate)
    monkeypatch.setattr(cli_keys, "_interactive", lambda: True)
    result = CliRunner().invoke(
        _cli(), ["keys", "generate", "-o", str(tmp_path)], input="pw\npw\n", env={PASSWORD_ENV: None}
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("Enter password for private key") == 2
    assert seen == [(tmp_path, b"pw")]


def test_cli_without_password_or_terminal_fails_clearly(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli_keys, "_interactive", lambda: False)
    result = CliRunner().invoke(_cli(), ["keys", "generate", "-o", str(tmp_path)], env={PASSWORD_ENV: None})
    assert isinstance(result.exception, SigningError)
    assert PASSWORD_ENV in result.exception.message
    assert list(tmp_path.iterdir()) == []
