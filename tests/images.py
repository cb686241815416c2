"""Test images made byte by byte, pushed with skopeo (a client independent of ours).

Layers are random bytes gzip-compressed by Python (not by Docker), so any client that
recompresses would change their digests: exactly what a promotion must never do.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.services import SKOPEO, Registry, run

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(name: str, size: int, seed: int) -> bytes:
    """A tar holding one file of ``size`` incompressible bytes, deterministic per seed."""
    content = _random_bytes(size, seed)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(content), 0
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)  # incompressible and reproducible


@dataclass
class OciLayout:
    """An OCI image layout directory that ``skopeo copy oci:DIR:TAG`` reads."""

    root: Path
    refs: dict[str, str] = field(default_factory=dict)  # tag -> top manifest digest

    def __post_init__(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def blob(self, data: bytes) -> dict[str, object]:
        digest = _digest(data)
        (self.root / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
        return {"digest": digest, "size": len(data)}

    def image(
        self, layer_sizes: list[int], *, seed: int = 0, platform: str = "linux/amd64", gzip_level: int = 9
    ) -> dict[str, object]:
        """An image manifest; returns its descriptor."""
        layers, diff_ids = [], []
        for i, size in enumerate(layer_sizes):
            tar = layer_tar(f"data-{seed}-{i}.bin", size, seed * 1000 + i)
            diff_ids.append(_digest(tar))
            layers.append({"mediaType": OCI_LAYER, **self.blob(gzip.compress(tar, gzip_level, mtime=0))})
        os_name, arch = platform.split("/")[:2]
        config = json.dumps(
            {
                "architecture": arch,
                "os": os_name,
                "config": {"Cmd": ["/data"]},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            },
            separators=(",", ":"),
        )
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, **self.blob(config.encode())},
                "layers": layers,
            },
            separators=(",", ":"),
        ).encode()
        return {"mediaType": OCI_MANIFEST, **self.blob(manifest), "platform": {"architecture": arch, "os": os_name}}

    def index(self, images: list[dict[str, object]]) -> dict[str, object]:
        raw = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": images}, separators=(",", ":")
        ).encode()
        return {"mediaType": OCI_INDEX, **self.blob(raw)}

    def tag(self, name: str, descriptor: dict[str, object]) -> str:
        self.refs[name] = str(descriptor["digest"])
        entries = []
        for ref, digest in self.refs.items():
            raw = self.read(digest)
            entries.append(
                {
                    "mediaType": json.loads(raw)["mediaType"],
                    "digest": digest,
                    "size": len(raw),
                    "annotations": {"org.opencontainers.image.ref.name": ref},
                }
            )
        (self.root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
        return self.refs[name]

    def read(self, digest: str) -> bytes:
        return (self.root / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()


def skopeo_push(layout: OciLayout, tag: str, registry: Registry, repository: str, creds: str | None = None) -> str:
    """Copy ``layout:tag`` into ``registry/repository:tag`` keeping every digest; returns the digest."""
    args = [SKOPEO, "copy", "--quiet", "--preserve-digests", "--all"]
    if registry.cert_dir is not None:
        args += ["--dest-cert-dir", str(registry.cert_dir)]
    else:
        args += ["--dest-tls-verify=false"]
    if creds:
        args += ["--dest-creds", creds]
    run(
        [*args, f"oci:{layout.root}:{tag}", f"docker://{registry.host}/{repository}:{tag}"],
        timeout=300,
        env={**os.environ, "HOME": str(layout.root)},
    )
    return layout.refs[tag]


def files_tar(files: dict[str, str]) -> bytes:
    """A layer holding text files (directories made as needed), fixed mtimes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = sorted({"/".join(name.split("/")[:i]) for name in files for i in range(1, name.count("/") + 1)})
        for directory in dirs:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def busybox_app(layout: OciLayout, tag: str, files: dict[str, str], cmd: list[str]) -> str:
    """An image that runs: the static busybox root filesystem plus ``files``, started with
    ``cmd``; tagged ``tag`` in ``layout``, its digest returned (push it with ``skopeo_push``)."""
    from tests.services import busybox_rootfs_tar

    layers, diff_ids = [], []
    for tar in (busybox_rootfs_tar(), files_tar(files)):
        diff_ids.append(_digest(tar))
        layers.append({"mediaType": OCI_LAYER, **layout.blob(gzip.compress(tar, 6, mtime=0))})
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": cmd, "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        },
        separators=(",", ":"),
    )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, **layout.blob(config.encode())},
            "layers": layers,
        },
        separators=(",", ":"),
    ).encode()
    return layout.tag(tag, {"mediaType": OCI_MANIFEST, **layout.blob(manifest)})
