"""A real BuildKit daemon for the test suite, and the certificates that guard it.

``buildkitd`` (v0.32, built by ``scripts/install-go-tools.sh``) runs as root with its own
``--root``, the OCI worker on runc and no containerd, on a unix socket or on 127.0.0.1 over TCP
with mutual TLS, exactly as a build farm runs it. Its ``buildkitd.toml`` lists the test
registries (plain HTTP, or TLS with their own CA), so it needs no image from the internet.
Certificates are made here with ``cryptography``: a CA, a server certificate for 127.0.0.1 and
client certificates, plus a second CA whose client certificate the daemon must refuse.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.services import PathLike, Service, _short_dir, _unmount_below, free_port
from tests.tools import tool


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of one identity (certificate and key) and the CA that issued it."""

    ca_file: Path
    cert_file: Path
    key_file: Path


class CertificateAuthority:
    """A throwaway CA (P-256) that issues server and client certificates into a directory."""

    def __init__(self, directory: Path, name: str = "pipeline test CA") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.ca_file = directory / "ca.pem"
        builder = (
            self._base(self._name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        )
        self._write(self.ca_file, builder)

    def _base(self, subject, public_key):  # type: ignore[no-untyped-def]
        from cryptography import x509

        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
        )

    def _write(self, path: Path, builder) -> None:  # type: ignore[no-untyped-def]
        from cryptography.hazmat.primitives import hashes, serialization

        cert = builder.sign(self._key, hashes.SHA256())
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, server: bool) -> TlsFiles:
        """A certificate for ``name``: a server one valid for 127.0.0.1 and localhost, or a client one."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            self._base(subject, key.public_key())
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert_file, key_file = self.directory / f"{name}.pem", self.directory / f"{name}-key.pem"
        self._write(cert_file, builder)
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_file.chmod(0o600)
        return TlsFiles(self.ca_file, cert_file, key_file)


def registry_toml(registries: Mapping[str, Path | None]) -> str:
    """``[registry."host"]`` sections: plain HTTP for ``None``, else trust the given CA file."""
    sections = []
    for host, ca in registries.items():
        # BuildKit speaks plain HTTP to any loopback registry unless told `http = false`
        body = "  http = true\n  insecure = true\n" if ca is None else f'  http = false\n  ca = ["{ca}"]\n'
        sections.append(f'[registry."{host}"]\n{body}')
    return "\n".join(sections)


class BuildkitDaemon(Service):
    """``buildkitd`` on a unix socket, or on 127.0.0.1 over TCP with mutual TLS when ``ca`` is given.

    ``address`` is what a builder config names; ``client`` the certificate a client presents.
    """

    name = "buildkitd"
    start_timeout = 60.0

    def __init__(
        self, base_dir: PathLike, *, registries: Mapping[str, Path | None], ca: CertificateAuthority | None = None
    ) -> None:
        super().__init__(base_dir)
        self.registries = dict(registries)
        self.run_dir, self._own_run_dir = _short_dir(self.base_dir, "/buildkitd.sock")
        self.root = self.base_dir / "root"
        self.server: TlsFiles | None = ca.issue("buildkitd", server=True) if ca else None
        self.client: TlsFiles | None = ca.issue("pipeline-worker", server=False) if ca else None
        self.port = free_port() if ca else None
        self.address = f"tcp://127.0.0.1:{self.port}" if ca else f"unix://{self.run_dir / 'buildkitd.sock'}"

    def start(self) -> None:
        started = time.monotonic()
        config = self.base_dir / "buildkitd.toml"
        config.write_text(
            "[worker.oci]\n  enabled = true\n  gc = false\n\n"
            "[worker.containerd]\n  enabled = false\n\n" + registry_toml(self.registries)
        )
        args = [
            tool("buildkitd"),
            "--addr",
            self.address,
            "--root",
            str(self.root),
            "--config",
            str(config),
            "--oci-worker=true",
            "--containerd-worker=false",
            "--allow-insecure-entitlement",
            "network.host",
        ]
        if self.server:
            args += [
                "--tlscacert",
                str(self.server.ca_file),
                "--tlscert",
                str(self.server.cert_file),
                "--tlskey",
                str(self.server.key_file),
            ]
        self._spawn(args)
        self._wait_ready(self._answers, started)

    def buildctl(
        self, *args: str, tls: TlsFiles | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """``buildctl`` against this daemon with ``tls`` (default: the good client certificate)."""
        tls = tls or self.client
        flags = ["--addr", self.address]
        if tls:
            flags += [
                "--tlscacert",
                str(tls.ca_file),
                "--tlscert",
                str(tls.cert_file),
                "--tlskey",
                str(tls.key_file),
                "--tlsservername",
                "127.0.0.1",
            ]
        return subprocess.run(
            [tool("buildctl"), *flags, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def _answers(self) -> bool:
        try:
            return self.buildctl("debug", "workers", timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def stop(self, *, remove: bool = False) -> None:
        """Stop the daemon (and the runc containers of a build in flight); unmount what it left."""
        super().stop(remove=remove)
        _unmount_below(self.base_dir, self.run_dir)
        if self._own_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the daemon now, as a node that dies mid-build would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.stop()
