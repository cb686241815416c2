"""Real services for the test suite: a Docker Engine, a CNCF distribution registry,
PostgreSQL 15 and skopeo, each started in a directory the caller owns.

Tests run against the real programs rather than fakes, because what matters (digests, auth
challenges, BuildKit, SQL) is exactly what a fake gets wrong. Every service runs in its own
process group (stop() takes its children down too), polls for readiness with a bounded
timeout, and on failure raises RuntimeError with the tail of its log. Binaries are called by
absolute path: /usr/local/bin/docker on these machines is a newer client without buildx.
"""

from __future__ import annotations

import datetime
import io
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

DOCKER = "/usr/bin/docker"
# Debian's docker.io installs the daemon as /usr/sbin/dockerd.
DOCKERD = next((p for p in ("/usr/bin/dockerd", "/usr/sbin/dockerd") if os.path.exists(p)), "/usr/sbin/dockerd")
DOCKER_REGISTRY = "/usr/bin/docker-registry"
SKOPEO = "/usr/bin/skopeo"
BUSYBOX = "/bin/busybox"
PSQL = "/usr/bin/psql"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
BUSYBOX_APPLETS = ("sh", "ls", "cat", "echo", "mkdir", "cp", "rm", "env", "wc", "sleep", "true", "test", "grep")
# The pinned Go tools (scripts/install-go-tools.sh); tests/tools.py fails a test that lacks one.
TOOLS_BIN = Path(os.environ.get("PIPELINE_TOOLS_DIR", "/var/cache/pipeline/tools")) / "bin"
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PathLike = str | Path


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (free now; racy, but good enough)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: PathLike, lines: int = 40) -> str:
    """Last lines of a log, so that an error message explains itself."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def run(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 120,
    cwd: PathLike | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command to completion; raise RuntimeError with its output when it fails."""
    proc = subprocess.run(
        list(args),
        env=None if env is None else dict(env),
        input=input,
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} exited with {proc.returncode}\n"
            f"stdout: {proc.stdout.decode(errors='replace')[-2000:]}\n"
            f"stderr: {proc.stderr.decode(errors='replace')[-4000:]}"
        )
    return proc


def _short_dir(preferred: Path, longest_suffix: str) -> tuple[Path, bool]:
    """(preferred, False) if a socket under it fits in sun_path, else (new /tmp/pt-XXXX, True):
    pytest's tmp_path is often too long for unix socket paths."""
    if len(str(preferred) + longest_suffix) <= SOCKET_PATH_MAX:
        return preferred, False
    return Path(tempfile.mkdtemp(prefix="pt-", dir="/tmp")), True


def _unmount_below(*roots: Path) -> None:
    """dockerd leaves its network-namespace mount (exec/netns/default) behind; without this
    the directory cannot be deleted and pytest's temp cleanup warns on every later run."""
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1].replace("\\040", " ") for line in mounts]
    for point in sorted(points, reverse=True):
        if any(point == str(r) or point.startswith(f"{r}/") for r in roots):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; False once the group is gone."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class Service:
    """One long-running process in its own session, with a log file and a bounded start."""

    name = "service"
    start_timeout = 30.0
    stop_timeout = 20.0

    def __init__(self, base_dir: PathLike) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.base_dir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None  # how long the last start() took

    def start(self) -> None:
        raise NotImplementedError

    def stop(self, *, remove: bool = False) -> None:
        """Stop the process group; base_dir (logs, data) is deleted only if `remove`."""
        self._stop_group()
        if remove:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=None if env is None else dict(env),
                cwd=cwd,
            )

    def _wait_ready(self, check: Callable[[], bool], started: float) -> None:
        """Poll `check` until it holds; fail at once if the process died, or at the deadline."""
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise self._failure(f"exited with code {self.proc.returncode} while starting")
            if check():
                self.start_seconds = time.monotonic() - started
                return
            if time.monotonic() > started + self.start_timeout:
                raise self._failure(f"not ready after {self.start_timeout:.0f}s")
            time.sleep(0.2)

    def _failure(self, what: str) -> RuntimeError:
        """Stop what was started (a failed start leaks nothing), then say what happened."""
        self.stop()
        tail = log_tail(self.log_path)
        return RuntimeError(f"{self.name} {what}; last lines of {self.log_path}:\n{tail}")

    def _stop_group(self) -> None:
        """SIGTERM the whole group, SIGKILL it if the leader outlives stop_timeout."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        deadline = time.monotonic() + 5  # children may still be shutting down
        while _signal_group(proc.pid, 0) and time.monotonic() < deadline:
            time.sleep(0.1)
        _signal_group(proc.pid, signal.SIGKILL)


def busybox_rootfs_tar() -> bytes:
    """A tar of a minimal root filesystem around the static busybox (fixed mtimes)."""
    data = Path(BUSYBOX).read_bytes()
    if b"/ld-linux" in data[:4096]:  # a dynamic binary names its loader right after the headers
        raise RuntimeError(f"{BUSYBOX} is dynamically linked: install busybox-static")
    files = {
        "bin/busybox": (data, 0o755),
        "etc/passwd": (b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n", 0o644),
        "etc/group": (b"root:x:0:\nnogroup:x:65534:\n", 0o644),
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("tmp", 0o1777)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        for name, (content, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), mode
            tar.addfile(info, io.BytesIO(content))
        for applet in BUSYBOX_APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    return buf.getvalue()


class DockerEngine(Service):
    """A private dockerd (BuildKit built in) without a bridge, so engines can run side by side;
    build with `--network host`. Socket, pid file and exec root go to a short directory
    (`run_dir`, unix socket path limit); data root and log stay in base_dir."""

    name = "dockerd"
    start_timeout = 60.0

    def __init__(self, base_dir: PathLike) -> None:
        super().__init__(base_dir)
        # containerd's socket under the exec root is the longest path dockerd makes.
        self.run_dir, self._own_run_dir = _short_dir(self.base_dir, "/exec/containerd/containerd.sock.ttrpc")
        self.socket_path = self.run_dir / "docker.sock"
        self.host = f"unix://{self.socket_path}"
        self.data_root = self.base_dir / "root"

    def start(self) -> None:
        started = time.monotonic()
        config = self.base_dir / "daemon.json"
        config.write_text("{}\n")  # not the machine's /etc/docker/daemon.json
        # dockerd finds containerd, runc and docker-init on PATH.
        env = {**os.environ, "PATH": f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}"}
        env.pop("DOCKER_HOST", None)
        self._spawn(
            [
                DOCKERD,
                "--host",
                self.host,
                "--data-root",
                str(self.data_root),
                "--exec-root",
                str(self.run_dir / "exec"),
                "--pidfile",
                str(self.run_dir / "docker.pid"),
                "--config-file",
                str(config),
                "--bridge=none",
                "--iptables=false",
            ],
            env=env,
        )
        self._wait_ready(self._answers, started)

    def _answers(self) -> bool:
        try:
            probe = subprocess.run(
                [DOCKER, "--host", self.host, "version"], env=self.env(), capture_output=True, timeout=10, check=False
            )
            return probe.returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def stop(self, *, remove: bool = False) -> None:
        """Stop dockerd and its containerd; the private socket dir always goes."""
        super().stop(remove=remove)
        _unmount_below(self.base_dir, self.run_dir)
        if self._own_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def env(self, base: Mapping[str, str] | None = None, *, docker_config: PathLike | None = None) -> dict[str, str]:
        """`base` (default os.environ) plus DOCKER_HOST, DOCKER_BUILDKIT=1 and, if given,
        DOCKER_CONFIG (where `docker login` keeps credentials). env({}) gives only those."""
        env = dict(os.environ if base is None else base)
        env.update(DOCKER_HOST=self.host, DOCKER_BUILDKIT="1")
        if docker_config is not None:
            env["DOCKER_CONFIG"] = str(docker_config)
        return env

    def docker(
        self, *args: str, input: bytes | None = None, docker_config: PathLike | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[bytes]:
        """Run /usr/bin/docker against this engine; RuntimeError with stderr on failure."""
        return run([DOCKER, *args], env=self.env(docker_config=docker_config), input=input, timeout=timeout)

    def import_busybox(self, ref: str) -> str:
        """Import a busybox-only image as `ref` (there is no Docker Hub); returns its id."""
        out = self.docker("import", "--change", 'CMD ["/bin/sh"]', "-", ref, input=busybox_rootfs_tar())
        return out.stdout.decode().strip()

    def push(self, ref: str, *, docker_config: PathLike | None = None) -> None:
        self.docker("push", ref, docker_config=docker_config)

    def login(self, registry: str, user: str, password: str, docker_config: PathLike) -> None:
        """`docker login` into `docker_config`, never into the user's ~/.docker."""
        self.docker(
            "login",
            "--username",
            user,
            "--password-stdin",
            registry,
            input=password.encode(),
            docker_config=docker_config,
        )


def make_self_signed_cert(cert_path: Path, key_path: Path, days: int = 2) -> None:
    """A P-256 certificate for 127.0.0.1 and localhost that is its own CA (trust it directly)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)


class Registry(Service):
    """A CNCF distribution registry on 127.0.0.1, optionally with TLS and basic auth.

    token_auth, if given, becomes the config's `auth.token` section as is (realm, service,
    issuer, rootcertbundle); running the token server is the caller's job (tests/token_server.py).
    delete=False turns deletes off (the default of a registry as packaged), for the cleanup's
    "registry refuses deletes" path.

    A build `FROM` this registry needs tls=False: Docker 20.10's built-in BuildKit speaks plain
    HTTP to every 127.x registry (even one listed in insecure-registries) and gets 400 from a
    TLS one; docker push/pull/login and skopeo handle TLS here fine."""

    name = "registry"
    implementation = "distribution 2.8"  # what the tests and their ids call it

    def __init__(
        self,
        base_dir: PathLike,
        *,
        tls: bool = False,
        htpasswd_users: dict[str, str] | None = None,
        token_auth: Mapping[str, Any] | None = None,
        delete: bool = True,
    ) -> None:
        super().__init__(base_dir)
        self.delete = delete  # storage.delete.enabled: False answers every manifest DELETE with 405
        if htpasswd_users and token_auth:
            raise ValueError("distribution takes one auth method: htpasswd or token")
        self.tls, self.users, self.token_auth = tls, dict(htpasswd_users or {}), token_auth
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"{'https' if tls else 'http'}://{self.host}"
        self.config_path = self.base_dir / "config.yml"
        self.data_dir = self.base_dir / "data"
        self.ca_file: Path | None = self.base_dir / "cert.pem" if tls else None
        self.cert_dir: Path | None = self.base_dir / "certs" if tls else None  # skopeo --cert-dir

    def creds(self, user: str | None = None) -> str | None:
        """'user:password' for skopeo --creds (first user by default); None without users."""
        if not self.users:
            return None
        user = user or next(iter(self.users))
        return f"{user}:{self.users[user]}"

    def start(self) -> None:
        started = time.monotonic()
        self.config_path.write_text(json.dumps(self._config(), indent=2) + "\n")  # JSON is YAML
        # REGISTRY_* variables would override the config file: keep them out.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        self._spawn([self.binary(), "serve", str(self.config_path)], env=self._env(env), cwd=self.base_dir)
        self._wait_ready(self._answers, started)

    def binary(self) -> str:
        """The registry program: Debian's distribution 2.8."""
        return DOCKER_REGISTRY

    def _env(self, env: dict[str, str]) -> dict[str, str]:
        return env

    def _config(self) -> dict[str, Any]:
        http: dict[str, Any] = {"addr": self.host, "secret": secrets.token_hex(16)}
        if self.ca_file and self.cert_dir:
            key_file = self.base_dir / "key.pem"
            make_self_signed_cert(self.ca_file, key_file)
            self.cert_dir.mkdir(exist_ok=True)
            shutil.copyfile(self.ca_file, self.cert_dir / "ca.crt")
            http["tls"] = {"certificate": str(self.ca_file), "key": str(key_file)}
        config: dict[str, Any] = {
            "version": "0.1",
            "log": {"level": "info"},
            "http": http,
            "storage": {"filesystem": {"rootdirectory": str(self.data_dir)}, "delete": {"enabled": self.delete}},
        }
        if self.users:  # distribution accepts bcrypt entries only
            import bcrypt

            htpasswd = self.base_dir / "htpasswd"
            htpasswd.write_text(
                "".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt()).decode()}\n" for u, p in self.users.items())
            )
            config["auth"] = {"htpasswd": {"realm": "basic-realm", "path": str(htpasswd)}}
        elif self.token_auth:  # Bearer-token challenge flow, as public registries use
            config["auth"] = {"token": dict(self.token_auth)}
        return config

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context trusting this registry's certificate (None for plain HTTP)."""
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else None

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=5, context=self.ssl_context()) as resp:
                return bool(resp.status == 200)
        except urllib.error.HTTPError as exc:
            return exc.code == 401
        except OSError:  # URLError included: not listening yet
            return False


REGISTRY3 = TOOLS_BIN / "registry3"


class Registry3(Registry):
    """CNCF distribution 3 (``registry3``, built by scripts/install-go-tools.sh), configured
    like ``Registry`` so every registry test can run against both implementations.

    The config file format is the same (version 0.1). What differs for a client: distribution 3
    serves the OCI referrers API (``GET /v2/<name>/referrers/<digest>``, answered with an
    image index) and says ``OCI-Subject`` when it stores a manifest with a ``subject``; 2.8
    answers the referrers path with 404, so tools fall back to the ``sha256-<hex>`` tag.
    OpenTelemetry tracing is compiled in and on by default; the exporter is turned off here
    (it would try to reach a collector on localhost:4318 and log every failure)."""

    name = "registry3"
    implementation = "distribution 3"

    def binary(self) -> str:
        if not os.access(REGISTRY3, os.X_OK):
            raise RuntimeError(f"{REGISTRY3} is missing: run `bash scripts/install-go-tools.sh registry3`")
        return str(REGISTRY3.resolve())

    def _env(self, env: dict[str, str]) -> dict[str, str]:
        return {**env, "OTEL_TRACES_EXPORTER": "none", "OTEL_SDK_DISABLED": "true"}

    def _config(self) -> dict[str, Any]:
        """2.8's config, plus a JWKS naming the token key by its libtrust fingerprint.

        distribution 3 looks a token's ``kid`` up by the RFC 7638 JWK thumbprint of each
        ``rootcertbundle`` certificate's key, where 2.8 used the libtrust fingerprint: a token
        server written for 2.8 (ours, and older ones in the wild) is refused with "token signed
        by untrusted key". Its ``jwks`` option takes keys with any ``kid``, which is how an
        operator keeps such a token server working, so that is what is configured here."""
        config = super()._config()
        token = config.get("auth", {}).get("token")
        if token and token.get("rootcertbundle") and "jwks" not in token:
            jwks = self.base_dir / "token-jwks.json"
            jwks.write_text(json.dumps({"keys": _libtrust_jwks(Path(token["rootcertbundle"]))}))
            config["auth"]["token"] = {**token, "jwks": str(jwks)}
        return config


def _libtrust_jwks(bundle: Path) -> list[dict[str, str]]:
    """The EC P-256 keys of a certificate bundle as JWKs whose kid is the libtrust fingerprint
    (base32 of the first 30 bytes of sha256(SPKI DER), in 12 groups of 4 joined by ':')."""
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    keys = []
    for cert in x509.load_pem_x509_certificates(bundle.read_bytes()):
        public = cert.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
            continue
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
        kid = ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))
        numbers = public.public_numbers()

        def b64url(value: int) -> str:
            return base64.urlsafe_b64encode(value.to_bytes(32, "big")).decode().rstrip("=")

        keys.append({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64url(numbers.x), "y": b64url(numbers.y)})
    return keys


class Postgres(Service):
    """PostgreSQL 15 as user postgres (it refuses root), TCP on 127.0.0.1, durability off.

    The cluster lives in base_dir when user postgres can reach it, else in a private
    /tmp/pt-XXXX (pytest's tmp dirs are root-only 0700) that stop() deletes after copying the
    log into base_dir, so nothing piles up in /tmp: `run_dir`, `data_dir`, `log_path` say where."""

    name = "postgres"
    start_timeout = 60.0

    def __init__(self, base_dir: PathLike) -> None:
        super().__init__(base_dir)
        self.port = free_port()
        self.url = self.url_for("postgres")
        self.run_dir, self._own_run_dir = _short_dir(self.base_dir, f"/.s.PGSQL.{self.port}.lock")
        reachable = all(os.stat(p).st_mode & 0o001 for p in self.base_dir.parents)
        if not self._own_run_dir and not reachable:
            self.run_dir, self._own_run_dir = Path(tempfile.mkdtemp(prefix="pt-", dir="/tmp")), True
        self.data_dir = self.run_dir / "data"
        self._server_log = self.run_dir / "postgres.log"  # pg_ctl writes it as user postgres
        self.log_path = self._server_log

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _as_postgres(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        return run(["/usr/sbin/runuser", "-u", "postgres", "--", *args], timeout=timeout, cwd=self.run_dir)

    def start(self) -> None:
        started = time.monotonic()
        self.run_dir.mkdir(exist_ok=True)  # a private run_dir is gone after stop()
        shutil.chown(self.run_dir, "postgres", "postgres")
        self.log_path = self._server_log
        if not (self.data_dir / "PG_VERSION").exists():
            self._as_postgres(
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data_dir),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
        options = (
            f"-k {self.run_dir} -p {self.port} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        )
        try:
            self._as_postgres(
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-o",
                options,
                "-l",
                str(self._server_log),
                "-w",
                "-t",
                str(int(self.start_timeout)),
                "start",
                timeout=self.start_timeout + 10,
            )
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            raise self._failure(f"did not start ({exc})") from exc
        self._wait_ready(self._answers, started)

    def _answers(self) -> bool:
        try:
            self.psql("SELECT 1")
            return True
        except (RuntimeError, subprocess.TimeoutExpired):
            return False

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through psql over TCP; unaligned, tuples-only output."""
        out = run(
            [
                PSQL,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-X",
                "-A",
                "-t",
                "-c",
                sql,
            ],
            timeout=60,
        )
        return out.stdout.decode()

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create a database (a copy of `template`, which must be idle); returns its URL."""
        template_sql = f" TEMPLATE {_ident(template)}" if template else ""
        self.psql(f"CREATE DATABASE {_ident(name)}{template_sql}")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing its connections (FORCE) so a leaked pool cannot block it."""
        self.psql(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")

    def stop(self, *, remove: bool = False) -> None:
        """pg_ctl stop -m fast (SIGQUIT if that fails). A cluster in base_dir stays unless
        `remove`; a private run_dir goes, its log copied to base_dir/postgres.log first."""
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists():
            try:
                self._as_postgres(
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                    timeout=self.stop_timeout + 10,
                )
            except (RuntimeError, subprocess.TimeoutExpired):
                try:  # SIGQUIT: immediate shutdown
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
                except (OSError, ValueError, IndexError):
                    pass
        if self._own_run_dir and self.run_dir.exists():
            self.log_path = self.base_dir / "postgres.log"
            if self._server_log.exists():
                with open(self.log_path, "ab") as kept:
                    kept.write(self._server_log.read_bytes())
            shutil.rmtree(self.run_dir, ignore_errors=True)
        if remove:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _skopeo(
    mode: Sequence[str], ref: str, tls_verify: bool, cert_dir: PathLike | None, creds: str | None
) -> dict[str, Any]:
    args = [SKOPEO, "inspect", *mode, f"--tls-verify={'true' if tls_verify else 'false'}"]
    if cert_dir is not None:
        args += ["--cert-dir", str(cert_dir)]
    if creds is not None:
        args += ["--creds", creds]
    out = run([*args, ref if "://" in ref else f"docker://{ref}"], timeout=120)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def skopeo_inspect(
    ref: str, *, tls_verify: bool, cert_dir: PathLike | None = None, creds: str | None = None, raw: bool = False
) -> dict[str, Any]:
    """What a registry really holds, seen by a client independent of the code under test.
    `ref` without a transport means docker://ref; raw=True returns the manifest itself."""
    return _skopeo(["--raw"] if raw else [], ref, tls_verify, cert_dir, creds)


def skopeo_config(
    ref: str, *, tls_verify: bool, cert_dir: PathLike | None = None, creds: str | None = None
) -> dict[str, Any]:
    """The image config (labels, env, cmd, history) as `skopeo inspect --config` gives it."""
    return _skopeo(["--config"], ref, tls_verify, cert_dir, creds)
