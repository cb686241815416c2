"""The fault proxy against a real distribution registry, with real clients (httpx, skopeo).

Tests that rely on the proxy to prove a client survives flaky networks are only as good as the
proxy: it must be invisible at rate 0 (uploads, manifests, skopeo), each fault kind must be
exactly what the client sees, a fault injected before forwarding must leave the registry
untouched (checked on its storage and its access log), the fault share must follow the seeded
rate, and 200 MB must stream through without being buffered.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import io
import json
import os
import random
import socket
import tarfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import httpx
import pytest

from tests.fault_proxy import PRE_FORWARD_KINDS, FaultProxy
from tests.services import SKOPEO, Registry, run, skopeo_inspect

MiB = 1024 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CHUNK_READ = 64 * 1024


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One registry for the module (each test uses its own repositories): starting one per
    test would cost more than the tests themselves."""
    registry = Registry(tmp_path_factory.mktemp("fault-proxy") / "reg")
    registry.start()
    yield registry
    registry.stop()


# -- helpers ---------------------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def pieces(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    """A body httpx has to stream (a generator), not one it can send in a single write."""
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


def storage_snapshot(registry: Registry) -> dict[str, tuple[int, int]]:
    """Every file in the registry's storage with size and mtime: any write shows up."""
    root = registry.data_dir
    return (
        {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}
        if root.exists()
        else {}
    )


def access_lines(registry: Registry, needle: str) -> int:
    """Requests the registry logged (its combined access log) whose line contains `needle`."""
    return sum(
        1
        for line in registry.log_path.read_text(errors="replace").splitlines()
        if line.startswith("127.0.0.1 - - [") and needle in line
    )


def wait_for_access_lines(registry: Registry, needle: str, count: int) -> int:
    """The access log line is written just after the response: give it a moment."""
    deadline = time.monotonic() + 5
    while (seen := access_lines(registry, needle)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return seen


def was_reset(exc: BaseException) -> bool:
    """True if a TCP RST is behind an httpx error (ECONNRESET, or EPIPE when writing after it)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionResetError | BrokenPipeError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def with_digest(location: str, digest: str) -> str:
    """The upload URL with ?digest= added: httpx 0.28's params= would replace its _state query."""
    return f"{location}{'&' if '?' in location else '?'}digest={urllib.parse.quote(digest)}"


def upload_blob(client: httpx.Client, base: str, repo: str, data: bytes) -> httpx.Response:
    """POST to start an upload, then PUT the whole body (streamed, Content-Length given)."""
    start = client.post(f"{base}/v2/{repo}/blobs/uploads/")
    assert start.status_code == 202, start.text
    put = client.put(
        with_digest(start.headers["Location"], sha256(data)),
        content=pieces(data),
        headers={"Content-Length": str(len(data))},
    )
    assert put.status_code == 201, put.text
    return put


def image(repo_tag: str, layer: bytes) -> tuple[bytes, bytes]:
    """(config, manifest) of an OCI image with one layer."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]},
            "history": [{"created_by": repo_tag}],
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}],
        }
    ).encode()
    return config, manifest


def push_image(client: httpx.Client, base: str, repo: str, tag: str, layer: bytes) -> bytes:
    config, manifest = image(f"{repo}:{tag}", layer)
    upload_blob(client, base, repo, layer)
    upload_blob(client, base, repo, config)
    put = client.put(f"{base}/v2/{repo}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert put.status_code == 201, put.text
    return manifest


def oci_layout(root: Path) -> str:
    """A one-image OCI layout (tag v1) for skopeo to copy; returns the manifest digest."""
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        content = b"hello through a flaky proxy\n"
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mode = len(content), 0o644
        archive.addfile(info, io.BytesIO(content))
    layer = gzip.compress(tar.getvalue(), mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256(tar.getvalue())]},
        }
    ).encode()
    _, manifest = image("unused", layer)
    manifest_doc = json.loads(manifest)
    manifest_doc["config"] = {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)}
    manifest = json.dumps(manifest_doc).encode()
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for blob in (layer, config, manifest):
        (blobs / sha256(blob).removeprefix("sha256:")).write_bytes(blob)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": sha256(manifest),
                        "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": "v1"},
                    }
                ],
            }
        )
    )
    return sha256(manifest)


class PeakRss:
    """Peak growth of this process's resident memory while the block runs.

    VmHWM (the kernel's high-water mark) is reset through /proc/self/clear_refs; a sampler
    thread reading VmRSS is the fallback where that is not allowed."""

    def __enter__(self) -> Self:
        self.baseline = self._field("VmRSS")
        self._hwm_reset = False
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self._hwm_reset = True
        except OSError:
            pass
        self._peak = self.baseline
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sampler.join()
        if self._hwm_reset:
            self._peak = max(self._peak, self._field("VmHWM"))
        self.growth = self._peak - self.baseline

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self._peak = max(self._peak, self._field("VmRSS"))

    @staticmethod
    def _field(name: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1]) * 1024  # kB
        raise RuntimeError(f"no {name} in /proc/self/status")


# -- rate 0: the proxy is invisible ------------------------------------------------------------


@pytest.mark.parametrize("preserve_host", [True, False], ids=["client-host", "upstream-host"])
def test_uploads_and_manifests_pass_through_and_stay_on_the_proxy(upstream: Registry, preserve_host: bool) -> None:
    """Distribution builds absolute upload URLs from Host: with the client's Host they already
    name the proxy; with its own Host the proxy must rewrite them. Either way every request
    of the upload reaches the proxy, and one keep-alive connection carries them all."""
    repo = f"passthrough/{'client' if preserve_host else 'upstream'}-host"
    layer = random.Random(1).randbytes(3 * MiB)
    config, manifest = image(f"{repo}:v1", layer)
    sent: list[str] = []
    locations: list[str] = []
    hooks = {
        "request": [lambda request: sent.append(str(request.url))],
        "response": [lambda response: locations.extend(response.headers.get_list("Location"))],
    }
    with (
        FaultProxy(upstream.url, preserve_host=preserve_host) as proxy,
        httpx.Client(timeout=30, event_hooks=hooks) as client,
    ):
        start = client.post(f"{proxy.url}/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202
        assert urllib.parse.urlsplit(start.headers["Location"]).netloc == proxy.host
        assert proxy.location_rewrites == (0 if preserve_host else 1)
        put = client.put(
            with_digest(start.headers["Location"], sha256(layer)),
            content=pieces(layer),
            headers={"Content-Length": str(len(layer))},
        )
        assert put.status_code == 201, put.text
        assert put.headers["Location"].startswith(f"{proxy.url}/v2/{repo}/blobs/")
        head = client.head(put.headers["Location"])
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(layer)
        with client.stream("GET", put.headers["Location"]) as download:
            assert b"".join(download.iter_raw(CHUNK_READ)) == layer
        upload_blob(client, proxy.url, repo, config)
        put_manifest = client.put(
            f"{proxy.url}/v2/{repo}/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        assert put_manifest.status_code == 201, put_manifest.text
        assert put_manifest.headers["Docker-Content-Digest"] == sha256(manifest)
        got = client.get(f"{proxy.url}/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert got.status_code == 200 and got.content == manifest
        assert got.headers["Content-Type"] == OCI_MANIFEST
        stats = proxy.stats()
    assert all(url.startswith(proxy.url) for url in sent)
    assert stats.forwarded == stats.requests == len(sent) and stats.injected == 0
    assert stats.connections == 1  # responses framed right: the client kept its connection
    assert len(locations) == 5  # POST, PUT for each blob; the manifest PUT
    assert all(location.startswith(f"{proxy.url}/v2/{repo}/") for location in locations)
    assert stats.location_rewrites == (0 if preserve_host else len(locations))
    direct = httpx.get(f"{upstream.url}/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert direct.content == manifest


def test_chunked_upstream_responses_are_reframed_for_keepalive(upstream: Registry) -> None:
    """distribution sends a tag list over 2 KB chunked; the proxy must re-chunk it so the
    client finds the end of the body and can send its next request on the same connection."""
    repo = "passthrough/many-tags"
    tags = [f"t{i:03d}-{'x' * 100}" for i in range(30)]
    with FaultProxy(upstream.url) as proxy, httpx.Client(timeout=30) as client:
        manifest = push_image(client, proxy.url, repo, tags[0], b"layer of many tags")
        for tag in tags[1:]:
            assert (
                client.put(
                    f"{proxy.url}/v2/{repo}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
                ).status_code
                == 201
            )
        listing = client.get(f"{proxy.url}/v2/{repo}/tags/list")
        assert listing.headers.get("Transfer-Encoding") == "chunked"
        assert sorted(listing.json()["tags"]) == tags
        assert client.get(f"{proxy.url}/v2/").status_code == 200
        assert proxy.stats().connections == 1


def test_skopeo_copy_and_inspect_through_the_proxy(upstream: Registry, tmp_path: Path) -> None:
    """A Go client (containers/image) tries HTTPS first, then plain HTTP: the proxy must turn
    the TLS hello away at once and then carry the whole copy."""
    digest = oci_layout(tmp_path / "oci")
    with FaultProxy(upstream.url) as proxy:
        run(
            [
                SKOPEO,
                "--insecure-policy",
                "copy",
                "--dest-tls-verify=false",
                f"oci:{tmp_path / 'oci'}:v1",
                f"docker://{proxy.host}/skopeo/hello:v1",
            ],
            timeout=60,
        )
        via_proxy = skopeo_inspect(f"{proxy.host}/skopeo/hello:v1", tls_verify=False)
        events = proxy.events
    direct = skopeo_inspect(f"{upstream.host}/skopeo/hello:v1", tls_verify=False)
    assert via_proxy["Digest"] == direct["Digest"] == digest
    assert ("PUT", "/v2/skopeo/hello/manifests/v1", "forwarded") in events
    assert any(method == "PUT" and "/blobs/uploads/" in path for method, path, _ in events)
    assert {outcome for _, _, outcome in events} == {"forwarded"}


# -- rate 1: exactly the fault, and the registry untouched ----------------------------------------


@pytest.mark.parametrize("kind", PRE_FORWARD_KINDS)
def test_each_kind_at_rate_1_reaches_the_client_and_never_the_registry(upstream: Registry, kind: str) -> None:
    """The client sees exactly the injected fault; the registry's storage and access log show
    that none of the requests (a mutation each, one with a 4 MB body) got to it."""
    repo = f"faults/rate-1-{kind}"
    layer = random.Random(2).randbytes(4 * MiB)
    _, manifest = image(f"{repo}:v1", layer)
    with FaultProxy(upstream.url, rate=1.0, kinds=[kind]) as proxy, httpx.Client(timeout=30) as client:
        with proxy.paused():  # an upload in progress, to send the body of the next one to
            start = client.post(f"{proxy.url}/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202
        storage, logged = storage_snapshot(upstream), access_lines(upstream, f"/v2/{repo}/")
        attempts = [
            client.build_request("POST", f"{proxy.url}/v2/{repo}/blobs/uploads/"),
            client.build_request("PATCH", start.headers["Location"], content=pieces(layer)),  # chunked
            client.build_request("PUT", with_digest(start.headers["Location"], sha256(layer)), content=layer),
            client.build_request(
                "PUT", f"{proxy.url}/v2/{repo}/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST}
            ),
            client.build_request("DELETE", start.headers["Location"]),
            client.build_request("GET", f"{proxy.url}/v2/{repo}/tags/list"),
        ]
        for request in attempts:
            if kind == "reset":
                with pytest.raises(httpx.TransportError) as failure:
                    client.send(request)
                # A RST that lands while httpcore still writes a body (headers and body are
                # separate writes) is swallowed by it, to look for a response; it then sees EOF.
                has_body = (
                    request.headers.get("Transfer-Encoding") == "chunked"
                    or int(request.headers.get("Content-Length", 0)) > 0
                )
                assert was_reset(failure.value) or (
                    has_body and isinstance(failure.value, httpx.RemoteProtocolError)
                ), repr(failure.value)
                continue
            response = client.send(request)
            assert response.status_code == int(kind), request
            assert response.headers["X-Fault-Injected"] == kind
            assert response.headers.get("Retry-After") == ("1" if kind == "429" else None)
            assert response.json()["errors"][0]["message"] == f"fault injected by proxy: {kind}"
        faulted = len(attempts)
        if kind == "reset":  # what the client really got: RST, not FIN (raw socket, no httpx)
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as raw:
                raw.sendall(f"GET /v2/{repo}/tags/list HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                with pytest.raises(ConnectionResetError):
                    raw.recv(1024)
            faulted += 1
        stats, storage_after = proxy.stats(), storage_snapshot(upstream)
        proxy.disable()  # a control request: this one must reach the registry and be logged
        assert client.get(f"{proxy.url}/v2/{repo}/tags/list").status_code == 404  # no tags
        assert proxy.forwarded == 2
    assert stats.faults == {kind: faulted} and stats.forwarded == 1
    assert stats.requests == faulted + 1
    # One connection throughout for answered faults (bodies drained, keep-alive kept); a reset
    # kills the connection every time (the first one was also the set-up POST's).
    assert stats.connections == (faulted if kind == "reset" else 1)
    assert wait_for_access_lines(upstream, f"/v2/{repo}/", logged + 1) == logged + 1
    assert storage_after == storage


def test_reset_mid_body_cuts_responses_after_the_registry_acted(upstream: Registry) -> None:
    """reset_mid_body forwards first: a download breaks off after headers and part of the
    body; an upload completes on the registry although its client only saw a reset."""
    repo = "faults/mid-body"
    blob = random.Random(3).randbytes(MiB)
    other = random.Random(4).randbytes(MiB)
    with FaultProxy(upstream.url, rate=1.0, kinds=["reset_mid_body"]) as proxy, httpx.Client(timeout=30) as client:
        with proxy.paused():
            location = upload_blob(client, proxy.url, repo, blob).headers["Location"]
            start = client.post(f"{proxy.url}/v2/{repo}/blobs/uploads/")
        received = bytearray()
        with client.stream("GET", location) as download:
            assert download.status_code == 200
            assert int(download.headers["Content-Length"]) == len(blob)
            with pytest.raises(httpx.TransportError) as failure:
                for chunk in download.iter_raw(CHUNK_READ):
                    received += chunk
        assert was_reset(failure.value), repr(failure.value)
        assert len(received) <= len(blob) // 2 and bytes(received) == blob[: len(received)]
        with pytest.raises(httpx.TransportError) as failure:  # 201 has no body: RST instead
            client.put(with_digest(start.headers["Location"], sha256(other)), content=other)
        assert was_reset(failure.value), repr(failure.value)
        stats = proxy.stats()
    assert stats.faults == {"reset_mid_body": 2} and stats.forwarded == stats.requests == 5
    head = httpx.head(f"{upstream.url}/v2/{repo}/blobs/{sha256(other)}")
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(other)


def test_predicate_and_runtime_switch_choose_which_requests_fail(upstream: Registry) -> None:
    """Faults can be aimed (only manifest PUTs here) and turned off and on while running."""
    repo = "faults/predicate"
    layer = b"a small layer"
    config, manifest = image(f"{repo}:v1", layer)
    with (
        FaultProxy(
            upstream.url,
            rate=1.0,
            kinds=["500"],
            predicate=lambda method, path: method == "PUT" and "/manifests/" in path,
        ) as proxy,
        httpx.Client(timeout=30) as client,
    ):
        assert client.get(f"{proxy.url}/v2/").status_code == 200
        upload_blob(client, proxy.url, repo, layer)  # blob PUTs are not selected
        upload_blob(client, proxy.url, repo, config)
        url = f"{proxy.url}/v2/{repo}/manifests/v1"
        headers = {"Content-Type": OCI_MANIFEST}
        assert client.put(url, content=manifest, headers=headers).status_code == 500
        assert client.head(url).status_code == 404  # the failed PUT stored nothing
        proxy.disable()
        assert client.put(url, content=manifest, headers=headers).status_code == 201
        proxy.enable()
        assert client.put(url, content=manifest, headers=headers).status_code == 500
        proxy.configure(kinds=["429"], predicate=None)
        assert client.get(f"{proxy.url}/v2/").status_code == 429
        assert proxy.faults == {"500": 2, "429": 1}


# -- rate 0.2: the share follows the seed --------------------------------------------------------


def test_rate_0_2_over_200_requests_breaks_a_reproducible_fifth(upstream: Registry) -> None:
    """With a seed the faults are a function of the request sequence: the counts must be the
    ones the same RNG gives, near 20 %, and the registry must have logged only the rest."""
    kinds, seed, total = ("reset", "500", "429", "503"), 20240601, 200
    agent = f"fault-proxy-rate-test-{os.getpid()}"
    seen: collections.Counter[str] = collections.Counter()
    with (
        FaultProxy(upstream.url, rate=0.2, kinds=kinds, seed=seed) as proxy,
        httpx.Client(timeout=10, headers={"User-Agent": agent}) as client,
    ):
        for i in range(total):
            try:
                response = client.get(f"{proxy.url}/v2/", params={"i": i})
            except httpx.TransportError as exc:
                assert was_reset(exc), repr(exc)
                seen["reset"] += 1
                continue
            if response.status_code == 200:
                seen["forwarded"] += 1
            else:
                assert str(response.status_code) == response.headers["X-Fault-Injected"]
                seen[response.headers["X-Fault-Injected"]] += 1
        stats = proxy.stats()
    rng = random.Random(seed)
    expected = collections.Counter(rng.choice(kinds) for _ in range(total) if rng.random() < 0.2)
    assert stats.faults == dict(expected) == {k: seen[k] for k in kinds if seen[k]}
    assert 0.14 <= stats.injected / total <= 0.26, stats
    assert stats.requests == total
    assert stats.forwarded == seen["forwarded"] == total - stats.injected
    assert wait_for_access_lines(upstream, agent, stats.forwarded) == stats.forwarded


# -- streaming and shutdown -----------------------------------------------------------------------


def test_200mb_streams_through_both_ways_in_little_memory(upstream: Registry) -> None:
    """A 200 MB chunked PATCH up and a 200 MB GET down: the proxy relays pieces, so the test
    process (client and proxy both) grows by far less than the body."""
    repo, blocks = "streaming/big", 200
    block = random.Random(5).randbytes(MiB)  # repeated: the body itself costs 1 MiB
    digest = hashlib.sha256()
    for _ in range(blocks):
        digest.update(block)
    blob_digest = f"sha256:{digest.hexdigest()}"
    with FaultProxy(upstream.url) as proxy, httpx.Client(timeout=60) as client, PeakRss() as rss:
        start = client.post(f"{proxy.url}/v2/{repo}/blobs/uploads/")
        patch = client.patch(start.headers["Location"], content=(block for _ in range(blocks)))
        assert patch.status_code == 202, patch.text
        assert patch.headers["Range"] == f"0-{blocks * MiB - 1}"
        put = client.put(with_digest(patch.headers["Location"], blob_digest))
        assert put.status_code == 201, put.text
        received, size = hashlib.sha256(), 0
        with client.stream("GET", put.headers["Location"]) as download:
            for chunk in download.iter_raw(CHUNK_READ):
                received.update(chunk)
                size += len(chunk)
        assert size == blocks * MiB and f"sha256:{received.hexdigest()}" == blob_digest
        assert proxy.stats().forwarded == 4
    assert rss.growth < 64 * MiB, f"RSS grew by {rss.growth / MiB:.1f} MiB"


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body (Content-Length framed) of one response on a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        assert more, f"connection closed after {data!r}"
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    while len(body) < int(headers.get("content-length", 0)):
        more = sock.recv(65536)
        assert more, "connection closed inside the body"
        body += more
    return int(status_line.split()[1]), headers, body


def test_expect_100_continue_is_promised_only_when_forwarding(upstream: Registry) -> None:
    """The proxy sends "100 Continue" itself once it has decided to forward; an injected
    fault is the final answer instead, and the client is told to close (it sent no body)."""
    repo, body = "streaming/expect", b"a body sent only after 100 Continue\n"
    with FaultProxy(upstream.url) as proxy, socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as raw:
        raw.sendall(
            f"POST /v2/{repo}/blobs/uploads/ HTTP/1.1\r\nHost: {proxy.host}\r\nContent-Length: 0\r\n\r\n".encode()
        )
        status, headers, _ = read_response(raw)
        assert status == 202
        patch = (
            f"PATCH {urllib.parse.urlsplit(headers['location']).path}?"
            f"{urllib.parse.urlsplit(headers['location']).query} HTTP/1.1\r\n"
            f"Host: {proxy.host}\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\n\r\n"
        ).encode()
        raw.sendall(patch)
        assert raw.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        raw.sendall(body)
        status, headers, _ = read_response(raw)
        assert (status, headers["range"]) == (202, f"0-{len(body) - 1}")
        proxy.configure(rate=1.0, kinds=["503"])
        raw.sendall(patch)  # the same connection: the responses so far were framed right
        status, headers, _ = read_response(raw)
        assert (status, headers["connection"], headers["x-fault-injected"]) == (503, "close", "503")
        assert raw.recv(1024) == b""
        assert proxy.stats().forwarded == 2


def test_stop_ends_every_thread_despite_idle_keepalive_connections(upstream: Registry) -> None:
    """Handler threads parked on idle keep-alive connections must not outlive stop() (they
    would hold up pytest's exit or leak into later tests)."""
    proxy = FaultProxy(upstream.url)
    proxy.start()
    clients = [httpx.Client(timeout=10) for _ in range(3)]
    try:
        for client in clients:
            assert client.get(f"{proxy.url}/v2/").status_code == 200
        ours = [t for t in threading.enumerate() if t.name.startswith(f"fault-proxy-{proxy.port}")]
        assert len(ours) == 4  # the accept loop and one handler per client connection
        port = proxy.port
        proxy.stop()
        assert [t for t in threading.enumerate() if t.name.startswith(f"fault-proxy-{port}")] == []
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=2)
    finally:
        for client in clients:
            client.close()
        proxy.stop()
