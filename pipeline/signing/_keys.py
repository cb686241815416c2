"""cosign.key and cosign.pub, readable and writable by cosign itself.

The private key file is cosign's envelope (go-securesystemslib ``encrypted``): scrypt derives a
secretbox key from the password, and the box holds the PKCS#8 DER of an ECDSA P-256 key. Keys
we generate work with ``cosign sign --key`` and keys cosign generated work here, so a team can
move between the two tools without re-keying.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.secret
import nacl.utils
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from pipeline.errors import SigningError

__all__ = [
    "PASSWORD_ENV",
    "decrypt_private_key",
    "encrypt_private_key",
    "generate_key_pair",
    "load_private_key",
    "load_public_key",
    "password_from_env",
    "public_key_from_pem",
    "public_key_pem",
]

PASSWORD_ENV = "COSIGN_PASSWORD"
PRIVATE_KEY_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"
_LEGACY_PRIVATE_KEY_LABEL = "ENCRYPTED COSIGN PRIVATE KEY"
_PRIVATE_KEY_LABELS = (PRIVATE_KEY_LABEL, _LEGACY_PRIVATE_KEY_LABEL)
_SCRYPT_N = 65536
_ACCEPTED_N = (32768, 65536, 131072)
_SALT_BYTES = 32
_KEY_FILE_LIMIT = 64 * 1024
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def password_from_env() -> bytes:
    """The password cosign would use non-interactively; set but empty is the empty password."""
    value = os.environ.get(PASSWORD_ENV)
    if value is None:
        raise SigningError(
            f"{PASSWORD_ENV} is not set: export the key's password ({PASSWORD_ENV}= for a key without one)"
        )
    return value.encode("utf-8")


def _pem(label: str, body: bytes) -> bytes:
    """PEM as Go's ``pem.Encode`` writes it: 64-column base64, trailing newline."""
    text = base64.b64encode(body).decode("ascii")
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    block = [f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]
    return "\n".join(block).encode("ascii")


def _unpem(data: bytes, source: str) -> tuple[str, bytes]:
    match = _PEM_BLOCK.search(data.decode("ascii", errors="replace"))
    if match is None:
        raise SigningError(f"{source}: no PEM block found; is this a cosign.key file?")
    try:
        return match.group(1), base64.b64decode("".join(match.group(2).split()), validate=True)
    except (binascii.Error, ValueError):
        raise SigningError(f"{source}: the PEM body is not valid base64; the file is damaged") from None


def _scrypt(password: bytes, salt: bytes, n: int) -> bytes:
    return Scrypt(salt=salt, length=nacl.secret.SecretBox.KEY_SIZE, n=n, r=8, p=1).derive(password)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _envelope(n: int, salt: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    """The JSON cosign writes, field for field in go-securesystemslib's struct order."""
    return json.dumps(
        {
            "kdf": {"name": "scrypt", "params": {"N": n, "r": 8, "p": 1}, "salt": _b64(salt)},
            "cipher": {"name": "nacl/secretbox", "nonce": _b64(nonce)},
            "ciphertext": _b64(ciphertext),
        },
        separators=(",", ":"),
    ).encode("ascii")


def _require_p256_private(key: Any, source: str) -> ec.EllipticCurvePrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningError(
            f"{source}: {_describe(key)} is not supported; cosign-compatible "
            "signing here uses ECDSA P-256 keys (`pipeline keys generate`)"
        )
    return key


def _require_p256_public(key: Any, source: str) -> ec.EllipticCurvePublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningError(
            f"{source}: {_describe(key)} is not supported; only ECDSA P-256 public keys (cosign.pub) are accepted"
        )
    return key


def _describe(key: Any) -> str:
    curve = getattr(key, "curve", None)
    if curve is not None:
        return f"an EC key on {curve.name}"
    return f"a {type(key).__name__.lstrip('_')}"


def encrypt_private_key(key: ec.EllipticCurvePrivateKey, password: bytes) -> bytes:
    """The cosign.key bytes for this key: what ``cosign generate-key-pair`` would write."""
    der = _require_p256_private(key, "private key").private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt = os.urandom(_SALT_BYTES)
    nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    box = nacl.secret.SecretBox(_scrypt(password, salt, _SCRYPT_N))
    ciphertext = box.encrypt(der, nonce).ciphertext
    return _pem(PRIVATE_KEY_LABEL, _envelope(_SCRYPT_N, salt, nonce, ciphertext))


def public_key_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    """cosign.pub: PEM ``PUBLIC KEY`` over the SPKI DER, as cosign writes it."""
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _pem("PUBLIC KEY", spki)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def generate_key_pair(directory: Path, password: bytes) -> tuple[Path, Path]:
    """Write a fresh cosign.key (mode 0600) and cosign.pub; never replace an existing key.

    Overwriting a key would orphan every signature made with it, so both names are checked
    before anything is written and each file is created exclusively.
    """
    key_path, pub_path = Path(directory) / "cosign.key", Path(directory) / "cosign.pub"
    for path in (key_path, pub_path):
        if path.exists():
            raise SigningError(f"{path} already exists; move it away or choose another --output-dir")
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(exc, directory) from None
    key = ec.generate_private_key(ec.SECP256R1())
    encrypted = encrypt_private_key(key, password)
    try:
        _write_new(key_path, encrypted, 0o600)
        os.chmod(key_path, 0o600)  # exactly 0600 whatever the umask, as cosign writes it
    except OSError as exc:
        raise _write_error(exc, directory) from None
    try:
        _write_new(pub_path, public_key_pem(key.public_key()), 0o644)
    except OSError as exc:
        key_path.unlink()  # ours (created exclusively): a key without its .pub is no use
        raise _write_error(exc, directory) from None
    return key_path, pub_path


def _write_error(exc: OSError, directory: Path) -> SigningError:
    if isinstance(exc, FileExistsError):
        return SigningError(f"{exc.filename} appeared while writing the key pair; nothing was replaced")
    return SigningError(f"cannot write the key pair into {directory}: {exc.strerror}")


def _field(data: Any, key: str, kind: type, source: str) -> Any:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SigningError(f"{source}: encrypted key field {key!r} is missing or malformed")
    return value


def _b64_field(data: Any, key: str, source: str) -> bytes:
    try:
        return base64.b64decode(_field(data, key, str, source), validate=True)
    except (binascii.Error, ValueError):
        raise SigningError(f"{source}: encrypted key field {key!r} is not valid base64") from None


def _parse_envelope(body: bytes, source: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise SigningError(f"{source}: the key body is not cosign's JSON envelope; the file is damaged")
    return data


def _kdf_params(kdf: dict[str, Any], source: str) -> tuple[int, bytes]:
    if kdf.get("name") != "scrypt":
        raise SigningError(f"{source}: key derivation {kdf.get('name')!r} is not supported (only scrypt)")
    params = _field(kdf, "params", dict, source)
    n, r, p = (_field(params, name, int, source) for name in ("N", "r", "p"))
    if n not in _ACCEPTED_N or r != 8 or p != 1:
        raise SigningError(
            f"{source}: scrypt parameters N={n} r={r} p={p} are not ones cosign accepts (N in {_ACCEPTED_N}, r=8, p=1)"
        )
    salt = _b64_field(kdf, "salt", source)
    return n, salt


def _nonce(cipher: dict[str, Any], source: str) -> bytes:
    if cipher.get("name") != "nacl/secretbox":
        raise SigningError(f"{source}: cipher {cipher.get('name')!r} is not supported (only nacl/secretbox)")
    nonce = _b64_field(cipher, "nonce", source)
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise SigningError(f"{source}: the secretbox nonce is {len(nonce)} bytes, not 24; the file is damaged")
    return nonce


def _open_box(envelope: dict[str, Any], password: bytes, source: str) -> bytes:
    n, salt = _kdf_params(_field(envelope, "kdf", dict, source), source)
    nonce = _nonce(_field(envelope, "cipher", dict, source), source)
    ciphertext = _b64_field(envelope, "ciphertext", source)
    try:
        return nacl.secret.SecretBox(_scrypt(password, salt, n)).decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError:
        raise SigningError(
            f"{source}: wrong password (decryption failed); give the password "
            f"the key was created with, e.g. in {PASSWORD_ENV}"
        ) from None


def decrypt_private_key(data: bytes, password: bytes, source: str = "private key") -> ec.EllipticCurvePrivateKey:
    """The key inside cosign.key bytes; ``source`` names them in errors (a path, a secret name)."""
    label, body = _unpem(data, source)
    if label not in _PRIVATE_KEY_LABELS:
        raise SigningError(f"{source}: PEM type {label!r} is not a cosign private key (expected {PRIVATE_KEY_LABEL!r})")
    der = _open_box(_parse_envelope(body, source), password, source)
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SigningError(f"{source}: decrypted, but the content is not a PKCS#8 private key") from None
    return _require_p256_private(key, source)


def _read_key_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(_KEY_FILE_LIMIT + 1)
    except OSError as exc:
        raise SigningError(f"{path}: cannot read key file ({exc.strerror})") from None
    if len(data) > _KEY_FILE_LIMIT:
        raise SigningError(f"{path}: far too large for a key file; is this the right path?")
    return data


def load_private_key(path: Path, password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """Read a cosign.key (new or legacy PEM type); the password defaults to COSIGN_PASSWORD."""
    data = _read_key_file(Path(path))
    if password is None:
        password = password_from_env()
    return decrypt_private_key(data, password, str(path))


def public_key_from_pem(data: bytes, source: str = "public key") -> ec.EllipticCurvePublicKey:
    """A P-256 public key from PEM SPKI bytes (a cosign.pub, or one held in config)."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SigningError(f"{source}: not a PEM public key (expected -----BEGIN PUBLIC KEY-----)") from None
    return _require_p256_public(key, source)


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """Read a cosign.pub; only P-256 keys, the only ones cosign generates."""
    return public_key_from_pem(_read_key_file(Path(path)), str(path))
