"""Packaging: the service's Dockerfile (hadolint, structure) and the Helm chart (helm lint --strict,
helm template with default, production-like and BuildKit-farm values through kubernetes-validate
--strict, and what the rendered objects say). helm comes from scripts/install-packaging-tools.sh
(.tools/)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from pipeline.cli import app
from pipeline.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "pipeline"
PRODUCTION_VALUES = CHART / "ci" / "production-values.yaml"
BUILDKIT_VALUES = CHART / "ci" / "buildkit-values.yaml"
INSTALL_SCRIPT = ROOT / "scripts" / "install-packaging-tools.sh"
BIN = Path(sys.executable).parent
KUBERNETES_VERSION = "1.30.0"
VALUE_SETS = {"default": [], "production": ["-f", str(PRODUCTION_VALUES)], "buildkit": ["-f", str(BUILDKIT_VALUES)]}
VALUE_FILES = {"default": CHART / "values.yaml", "production": PRODUCTION_VALUES, "buildkit": BUILDKIT_VALUES}
HOOK = "pre-install,pre-upgrade"


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120, cwd=ROOT, **kwargs)


def _tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{path} is missing: run `uv sync --frozen` (it is a locked dependency)"
    return str(path)


@pytest.fixture(scope="module")
def helm() -> str:
    """The pinned helm; installed once by the project's own script when missing."""
    result = _run(["bash", str(INSTALL_SCRIPT)])
    assert result.returncode == 0, (
        f"bash {INSTALL_SCRIPT.relative_to(ROOT)} could not install helm (exit {result.returncode}):\n"
        f"{result.stderr[-2000:]}"
    )
    path = result.stdout.strip().splitlines()[-1]
    assert os.access(path, os.X_OK), f"{INSTALL_SCRIPT.relative_to(ROOT)} printed {path!r}, not an executable"
    return path


def _template(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _run([helm, "template", "rel", str(CHART), "--namespace", "ci", *args])


@pytest.fixture(scope="module")
def rendered(helm: str) -> dict[str, str]:
    out = {}
    for name, args in VALUE_SETS.items():
        result = _template(helm, *args)
        assert result.returncode == 0, f"helm template ({name} values) failed:\n{result.stderr}"
        out[name] = result.stdout
    return out


def _objects(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert found, f"no {kind} {name or ''} rendered; have {[(o['kind'], o['metadata']['name']) for o in objects]}"
    return found


def _workers(objects: list[dict]) -> list[dict]:
    return [
        o for o in _find(objects, "Deployment") if o["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    ]


def _env(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


def _pod_specs(objects: list[dict]) -> list[tuple[str, dict]]:
    """The service's own pods (the BuildKit daemons are checked on their own)."""
    return [
        (f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"])
        for o in objects
        if o["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}
        and o["metadata"]["labels"].get("app.kubernetes.io/component") != "buildkit"
    ]


# --- Dockerfile -------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for op, args in _instructions():
        if op == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((op, args))
    return stages


def test_hadolint_reports_nothing_at_warning_or_above() -> None:
    hadolint = _tool("hadolint")
    gate = _run([hadolint, "--failure-threshold", "warning", "Dockerfile"])
    assert gate.returncode == 0, f"hadolint --failure-threshold warning:\n{gate.stdout}{gate.stderr}"
    report = _run([hadolint, "--no-fail", "-f", "json", "Dockerfile"])
    findings = json.loads(report.stdout)
    serious = [f for f in findings if f["level"] in {"error", "warning"}]
    assert serious == [], serious


def test_every_hadolint_ignore_is_explained() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    ignores = [i for i, line in enumerate(lines) if "hadolint ignore=" in line]
    assert ignores, "expected the DL3008 decision to be written down"
    for index in ignores:
        rules = lines[index].split("ignore=", 1)[1].split(",")
        assert rules == ["DL3008"], f"line {index + 1}: only DL3008 (unpinned apt versions) is waived: {rules}"
    text = "\n".join(lines)
    assert re.search(r"#.*DL3008.*\n#.*(security update|archive)", text), "the DL3008 waiver needs its reason"


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"^#\s*syntax=", text, re.MULTILINE), "a syntax line would pull a frontend image offline"
    stages = _stages()
    assert len(stages) >= 2
    runtime = stages[-1]
    ops = [op for op, _ in runtime]
    users = [args for op, args in runtime if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, users
    assert re.fullmatch(r"\d+(:\d+)?", users[-1]), "a numeric USER lets Kubernetes verify runAsNonRoot"
    assert "HEALTHCHECK" in ops and any("/healthz" in args for op, args in runtime if op == "HEALTHCHECK")
    assert any(op == "EXPOSE" and "8080" in args for op, args in runtime)
    # The runtime stage takes built artefacts from earlier stages; it builds nothing itself.
    assert any(op == "COPY" and "--from=" in args for op, args in runtime)
    assert not any("uv build" in args or "pip wheel" in args for op, args in runtime if op == "RUN")
    # The worker needs git and the Docker CLI.
    runtime_text = " ".join(args for _, args in runtime)
    assert re.search(r"apt-get install[^&]*\bgit\b", runtime_text)
    assert re.search(r"/usr/bin/docker\b", runtime_text)


def test_dockerfile_apt_and_cache_rules() -> None:
    runs = [args for op, args in _instructions() if op == "RUN"]
    assert any("--mount=type=cache" in args for args in runs), "the package manager needs a cache mount"
    for args in runs:
        commands = [c.strip() for c in re.split(r"&&|;", args)]
        assert not re.fullmatch(r"(--mount=\S+\s+)*apt-get update", commands[0]) or len(commands) > 1, (
            f"apt-get update on its own line: {args}"
        )
        if "apt-get install" in args:
            assert "apt-get update" in args and "rm -rf /var/lib/apt/lists/*" in args, args
            assert "--no-install-recommends" in args, args


def test_dependency_layer_comes_before_the_source() -> None:
    instructions = _instructions()

    def first(predicate) -> int:
        return next(i for i, (op, args) in enumerate(instructions) if predicate(op, args))

    lock_copy = first(lambda op, args: op == "COPY" and "uv.lock" in args)
    dep_install = first(lambda op, args: op == "RUN" and "uv sync" in args and "--no-install-project" in args)
    source_copy = first(lambda op, args: op == "COPY" and re.search(r"\bpipeline\b", args) and "--from" not in args)
    assert lock_copy < dep_install < source_copy
    assert "--frozen" in instructions[dep_install][1]
    assert "--mount=type=cache" in instructions[dep_install][1]
    # In the runtime stage too: the third-party venv is its own layer, before the project's wheel.
    runtime = _stages()[-1]
    venv_copy = next(i for i, (op, args) in enumerate(runtime) if op == "COPY" and "/opt/venv" in args)
    wheel_install = next(i for i, (op, args) in enumerate(runtime) if op == "RUN" and ".whl" in args)
    assert venv_copy < wheel_install


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        if any(
            fnmatch.fnmatchcase(c, pat) or (pat.startswith("**/") and fnmatch.fnmatchcase(c.split("/")[-1], pat[3:]))
            for c in candidates
        ):
            verdict = not negate
    return verdict


def test_dockerignore_keeps_the_context_to_what_is_copied() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    sources = []
    for op, args in _instructions():
        if op == "COPY" and "--from" not in args:
            sources += args.split()[:-1]
    assert sources
    for source in sources:
        assert not _ignored(source, patterns), f"{source} is copied but .dockerignore leaves it out"
    for unwanted in [
        ".git/config",
        ".venv/bin/python",
        "tests/conftest.py",
        ".pipeline-data/pipeline.db",
        ".tools/node_modules/x",
        "pipeline/__pycache__/config.cpython-311.pyc",
        "charts/README.md",
    ]:
        assert _ignored(unwanted, patterns), f"{unwanted} would be sent to the engine"


# --- Helm chart -------------------------------------------------------------------------------


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_helm_lint_strict(helm: str, values: str) -> None:
    result = _run([helm, "lint", "--strict", str(CHART), *VALUE_SETS[values]])
    assert result.returncode == 0, f"helm lint --strict ({values}):\n{result.stdout}{result.stderr}"
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_rendered_objects_pass_kubernetes_validate_strict(rendered: dict[str, str], values: str) -> None:
    result = _run(
        [_tool("kubernetes-validate"), "--strict", "--quiet", "-k", KUBERNETES_VERSION, "-"], input=rendered[values]
    )
    assert result.returncode == 0, f"kubernetes-validate ({values}):\n{result.stdout}{result.stderr}"
    # Only the ServiceMonitor (a CRD) has no schema there; it is checked below by hand.
    unknown = [line for line in (result.stdout + result.stderr).splitlines() if "Couldn't find schema" in line]
    assert all("ServiceMonitor" in line for line in unknown), unknown


def test_values_files_pass_yamllint() -> None:
    files = [CHART / "values.yaml", PRODUCTION_VALUES, BUILDKIT_VALUES, CHART / "Chart.yaml"]
    result = _run(
        [
            _tool("yamllint"),
            "--strict",
            "-f",
            "parsable",
            "-c",
            str(ROOT / "charts" / ".yamllint.yaml"),
            *map(str, files),
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_migration_job_is_a_pre_install_pre_upgrade_hook(rendered: dict[str, str], values: str) -> None:
    objects = _objects(rendered[values])
    (job,) = _find(objects, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == HOOK
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:1] == ["migrate"]
    assert "PIPELINE_DATABASE_URL" in _env(container)
    # The Job's config exists before it: a hook ConfigMap with a lower weight.
    config_name = next(
        v["configMap"]["name"] for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"
    )
    (config,) = _find(objects, "ConfigMap", config_name)
    assert config["metadata"]["annotations"]["helm.sh/hook"] == HOOK
    assert int(config["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    # No ordinary object the hook needs (ServiceAccount) is missing on a first install.
    assert "serviceAccountName" not in job["spec"]["template"]["spec"]


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_api_probes_and_command(rendered: dict[str, str], values: str) -> None:
    objects = _objects(rendered[values])
    (api,) = [
        o for o in _find(objects, "Deployment") if o["metadata"]["labels"]["app.kubernetes.io/component"] == "api"
    ]
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["port"] == "http"
    args = container["args"]
    assert args[0] == "api" and args[args.index("--host") + 1] == "0.0.0.0"
    assert int(args[args.index("--port") + 1]) == container["ports"][0]["containerPort"]
    (service,) = [o for o in _find(objects, "Service") if o["metadata"]["name"] == "rel-pipeline-api"]
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_no_secret_is_rendered_and_secrets_are_references(rendered: dict[str, str], values: str) -> None:
    objects = _objects(rendered[values])
    assert not [o for o in objects if o["kind"] == "Secret"]
    for where, spec in _pod_specs(objects):
        for container in spec["containers"]:
            env = _env(container)
            ref = env["PIPELINE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
            assert ref["name"] and ref["key"], where
            for item in env.values():
                if re.search(r"SECRET|PASSWORD|TOKEN|DATABASE_URL", item["name"]):
                    assert "value" not in item, f"{where}: {item['name']} has a literal value"


def test_production_secrets_are_wired_by_reference(rendered: dict[str, str]) -> None:
    objects = _objects(rendered["production"])
    for where, spec in _pod_specs(objects):
        env = _env(spec["containers"][0])
        assert env["PIPELINE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "pipeline-postgresql",
            "key": "url",
        }, where
        assert env["REGISTRY_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "pipeline-registry", where
        assert env["DOCKER_CONFIG"]["value"] == "/etc/pipeline/docker"
        secrets = {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        assert {"pipeline-git-ssh", "pipeline-docker-config"} <= secrets, where


def test_each_engine_gets_its_own_worker_and_docker_host(rendered: dict[str, str]) -> None:
    engines = yaml.safe_load(PRODUCTION_VALUES.read_text())["workers"]["engines"]
    workers = _workers(_objects(rendered["production"]))
    assert len(workers) == len(engines)
    hosts = {}
    for worker in workers:
        env = _env(worker["spec"]["template"]["spec"]["containers"][0])
        hosts[worker["metadata"]["labels"]["pipeline.example.com/engine"]] = env["DOCKER_HOST"]["value"]
    assert hosts == {e["name"]: e["dockerHost"] for e in engines}
    by_engine = {w["metadata"]["labels"]["pipeline.example.com/engine"]: w for w in workers}
    b_env = _env(by_engine["builder-b"]["spec"]["template"]["spec"]["containers"][0])
    assert b_env["BUILDKIT_HOST"]["value"] == "tcp://builder-b.build.svc:1234"
    assert b_env["DOCKER_TLS_VERIFY"]["value"] == "1"
    arm = by_engine["arm64"]
    assert arm["spec"]["replicas"] == 1
    arm_args = arm["spec"]["template"]["spec"]["containers"][0]["args"]
    assert arm_args[arm_args.index("--promotion-workers") + 1] == "0", "0 must not fall back to the default"
    assert "BUILDKIT_HOST" not in _env(arm["spec"]["template"]["spec"]["containers"][0])
    # Each worker has its own mirror cache claim.
    claims = {
        w["metadata"]["name"]: next(
            v["persistentVolumeClaim"]["claimName"]
            for v in w["spec"]["template"]["spec"]["volumes"]
            if v["name"] == "data"
        )
        for w in workers
    }
    assert len(set(claims.values())) == len(workers)
    assert {c["metadata"]["name"] for c in _find(_objects(rendered["production"]), "PersistentVolumeClaim")} == set(
        claims.values()
    )


def test_default_worker_caches_mirrors_in_an_empty_dir(rendered: dict[str, str]) -> None:
    (worker,) = _workers(_objects(rendered["default"]))
    data = next(v for v in worker["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    assert "emptyDir" in data
    mounts = {m["name"]: m["mountPath"] for m in worker["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["data"] == "/var/lib/pipeline"


def _cli_options(command: str) -> set[str]:
    group = typer.main.get_command(app)
    return {opt for param in group.commands[command].params for opt in param.opts}  # type: ignore[attr-defined]


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_rendered_commands_use_options_the_cli_has(rendered: dict[str, str], values: str) -> None:
    for where, spec in _pod_specs(_objects(rendered[values])):
        args = spec["containers"][0]["args"]
        flags = {a for a in args if a.startswith("--")}
        assert flags <= _cli_options(args[0]), f"{where}: pipeline {args[0]} has no {flags - _cli_options(args[0])}"


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_configmap_holds_a_config_the_service_accepts(
    rendered: dict[str, str], values: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PIPELINE_DATABASE_URL", raising=False)
    objects = _objects(rendered[values])
    (config_map,) = _find(objects, "ConfigMap", "rel-pipeline-config")
    data = yaml.safe_load(config_map["data"]["pipeline.yaml"])
    given = yaml.safe_load(VALUE_FILES[values].read_text())["config"]
    assert {k: v for k, v in data.items() if k != "data_dir"} == given
    assert data["data_dir"] == "/var/lib/pipeline" and "database_url" not in data
    config = parse_config(data, "ConfigMap pipeline.yaml")
    assert str(config.data_dir) == "/var/lib/pipeline"
    # Every pod mounts it where --config points, and restarts when it changes.
    for where, spec in _pod_specs(objects):
        container = spec["containers"][0]
        mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
        assert mount["mountPath"] == container["args"][container["args"].index("--config") + 1], where


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_pods_run_as_non_root_with_a_read_only_root(rendered: dict[str, str], values: str) -> None:
    for where, spec in _pod_specs(_objects(rendered[values])):
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] != 0, where
        assert spec["automountServiceAccountToken"] is False, where
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["runAsNonRoot"] is True and ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"]["drop"] == ["ALL"], where
            assert container["resources"]["requests"] and container["resources"]["limits"], where
            writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
            assert {"/tmp", "/home/pipeline", "/var/lib/pipeline"} <= writable, where


def test_service_monitor_and_ingress_only_when_asked(rendered: dict[str, str]) -> None:
    default = _objects(rendered["default"])
    assert not [o for o in default if o["kind"] in {"ServiceMonitor", "Ingress"}]
    production = _objects(rendered["production"])
    (monitor,) = _find(production, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    (service,) = _find(production, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (ingress,) = _find(production, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "config.database_url=postgresql+psycopg://u:p@db/x"], "database.existingSecret"),
        (
            [
                "--set",
                "workers.engines[0].name=a",
                "--set",
                "workers.engines[0].dockerHost=tcp://a:2376",
                "--set",
                "workers.engines[1].name=a",
                "--set",
                "workers.engines[1].dockerHost=tcp://b:2376",
            ],
            "used twice",
        ),
        (["--set", "workers.engines[0].name=Bad_Name"], "DNS label"),
        (["--set", "workers.engines[0].name=a,workers.engines[0].dockerHost="], "dockerHost is required"),
        (["--set", "database.existingSecret="], "database.existingSecret"),
    ],
)
def test_chart_refuses_bad_values_with_a_message(helm: str, args: list[str], message: str) -> None:
    result = _template(helm, *args)
    assert result.returncode != 0 and message in result.stderr, result.stderr


# --- BuildKit farm ----------------------------------------------------------------------------


def test_buildkit_farm_is_a_rootless_statefulset_behind_a_headless_service(rendered: dict[str, str]) -> None:
    values = yaml.safe_load(BUILDKIT_VALUES.read_text())["buildkit"]
    objects = _objects(rendered["buildkit"])
    (farm,) = _find(objects, "StatefulSet", "rel-pipeline-buildkit")
    service = next(o for o in _find(objects, "Service") if o["metadata"]["name"] == "rel-pipeline-buildkit")
    assert service["spec"]["clusterIP"] == "None" and farm["spec"]["serviceName"] == "rel-pipeline-buildkit"
    assert service["spec"]["ports"] == [{"name": "buildkit", "port": 1234, "targetPort": "buildkit"}]
    assert farm["spec"]["replicas"] == values["replicas"]
    pod = farm["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    (daemon,) = pod["containers"]
    args = daemon["args"]
    assert args[args.index("--addr", args.index("--addr") + 1) + 1] == "tcp://0.0.0.0:1234"
    for flag, path in (("--tlscacert", "ca.pem"), ("--tlscert", "cert.pem"), ("--tlskey", "key.pem")):
        assert args[args.index(flag) + 1] == f"/etc/buildkit/tls/{path}"
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls["secret"]["secretName"] == values["tlsSecret"]
    assert "capabilities" not in daemon["securityContext"] and "privileged" not in daemon["securityContext"]
    (claim,) = farm["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert {m["name"]: m["mountPath"] for m in daemon["volumeMounts"]}["cache"] == "/home/user/.local/share/buildkit"
    assert not [o for o in _objects(rendered["default"]) if o["kind"] == "StatefulSet"], "off by default"


def test_buildkit_workers_build_on_every_daemon_over_mutual_tls(
    rendered: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PIPELINE_DATABASE_URL", raising=False)
    values = yaml.safe_load(BUILDKIT_VALUES.read_text())
    objects = _objects(rendered["buildkit"])
    (worker,) = _workers(objects)  # workers.engines is empty: the farm's worker only
    assert worker["metadata"]["name"] == "rel-pipeline-worker-buildkit"
    pod = worker["spec"]["template"]["spec"]
    assert "DOCKER_HOST" not in _env(pod["containers"][0])
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["buildkit-tls"] == "/etc/pipeline/buildkit-tls"
    assert volumes["buildkit-tls"]["secret"]["secretName"] == values["buildkit"]["clientTlsSecret"]
    (config_map,) = _find(objects, "ConfigMap", volumes["config"]["configMap"]["name"])
    text = config_map["data"]["pipeline.yaml"]
    data = yaml.safe_load(text)
    assert [b["buildkit"] for b in data["builders"]] == [
        f"tcp://rel-pipeline-buildkit-{i}.rel-pipeline-buildkit.ci.svc:1234" for i in range(2)
    ]
    assert {b["max_parallel"] for b in data["builders"]} == {3}
    assert all(b["platforms"] == ["linux/amd64", "linux/arm64"] for b in data["builders"])
    # the service accepts it where the client certificate is mounted
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("PEM\n")
    config = parse_config(yaml.safe_load(text.replace("/etc/pipeline/buildkit-tls", str(tmp_path))), "ConfigMap")
    assert [(b.name, b.kind) for b in config.builder_pool] == [("buildkit-0", "buildkit"), ("buildkit-1", "buildkit")]
    assert config.projects["shop"].build.platforms == ["linux/amd64", "linux/arm64"]


def test_buildkit_farm_needs_its_tls_secrets(helm: str) -> None:
    result = _template(helm, "--set", "buildkit.enabled=true")
    assert result.returncode != 0 and "buildkit.tlsSecret" in result.stderr, result.stderr
