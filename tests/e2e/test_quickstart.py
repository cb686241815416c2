"""The README's first command, `bash scripts/quickstart.sh`, in a fresh clone of this repository:
it makes examples/hello a Git repository, sends a signed push webhook, and the sample is built
and promoted to dev while the service keeps serving. The engine and the registry are the test
session's (the script's DOCKER_HOST and PIPELINE_QUICKSTART_REGISTRY overrides); everything else
(uv environment, database, token, secret, base image, `pipeline serve`) is the script's own."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from tests.services import DockerEngine, Registry, free_port, skopeo_config, skopeo_inspect

ROOT = Path(__file__).resolve().parents[2]
SERVING = "serving until Ctrl-C"


def _stop(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    target = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True, timeout=120)
    return target


def test_quickstart_promotes_the_sample_to_dev_and_keeps_serving(
    clone: Path, engine: DockerEngine, registry: Registry
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env |= {"DOCKER_HOST": engine.host, "PIPELINE_QUICKSTART_REGISTRY": registry.host}
    proc = subprocess.Popen(
        ["bash", "scripts/quickstart.sh", "--port", str(port)],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    watchdog = threading.Timer(900, _stop, [proc])  # a hung script fails the test, never the session
    watchdog.start()
    output: list[str] = []
    try:
        for line in proc.stdout or []:
            output.append(line)
            if SERVING in line:
                break
        text = "".join(output)
        assert SERVING in text, text[-6000:]
        url, data = f"http://127.0.0.1:{port}", clone / ".pipeline-data"
        assert f"page:   {url}/" in text and f"export DOCKER_HOST={engine.host}" in text

        token = (data / "secrets" / "admin-token").read_text().strip()
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        sample = subprocess.run(
            ["git", "-C", str(data / "examples" / "hello"), "rev-parse", "HEAD"], capture_output=True, text=True
        )
        [build] = api.get("/api/v1/builds", params={"project": "hello"}).json()["items"]
        assert (build["status"], build["commit"], build["trigger"]) == ("succeeded", sample.stdout.strip(), "webhook")
        matrix = {e["environment"]: e for e in api.get("/api/v1/environments").json()["items"]}
        assert matrix["dev"]["current"]["digest"] == build["digest"] and matrix["staging"]["current"] is None
        assert build["digest"] in text  # the printed matrix, digest whole (piped output is never cut)

        dev = f"{registry.host}/example/hello:dev"
        assert skopeo_inspect(dev, tls_verify=False)["Digest"] == build["digest"]
        image = skopeo_config(dev, tls_verify=False)["config"]
        assert image["Labels"]["org.example.hello.version"] == "1.0" and image["User"] == "10001:10001"
        assert "HELLO_PORT=8000" in image["Env"] and image["WorkingDir"] == "/app"

        secret = data / "secrets" / "hello-webhook-secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(secret.read_text().strip()) == 40
        assert f"webhook_secret_file: {secret}" in (data / "quickstart.yaml").read_text()

        # A new shell, the README's way: the printed exports, then `pipeline doctor`.
        doctor = subprocess.run(
            ["bash", "-c", "source .pipeline-data/quickstart.env && pipeline doctor"],
            cwd=clone,
            env={k: v for k, v in env.items() if k != "DOCKER_HOST"},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        assert any(line.startswith("ok") and "builder default" in line for line in doctor.stdout.splitlines())
    finally:
        _stop(proc)
        proc.wait(timeout=120)
        watchdog.cancel()
    assert proc.returncode != 0  # stopped by SIGTERM, as Ctrl-C would
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
