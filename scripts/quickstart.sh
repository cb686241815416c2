#!/usr/bin/env bash
# Runs the service on the embedded defaults with config/pipeline.yaml: SQLite under
# .pipeline-data/, the local Docker engine, a registry on 127.0.0.1:5000.
# Where no Docker engine or registry answers and we are root on Debian, it installs and
# starts them (engine without a bridge: builds use --network host); otherwise it says what
# to start. Extra arguments go to `pipeline serve` (e.g. --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/uv.sh
"${UV[@]}" sync --frozen --quiet
state=.pipeline-data/services
mkdir -p "$state"

engine_answers() { docker version >/dev/null 2>&1 || /usr/bin/docker version >/dev/null 2>&1; }

if ! engine_answers; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "No Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unset})." >&2
        echo "Start one (sudo systemctl start docker) or set DOCKER_HOST, then run this again." >&2
        exit 1
    fi
    bash scripts/install-test-deps.sh
    run=/tmp/pipeline-dockerd
    mkdir -p "$run"
    export DOCKER_HOST="unix://$run/docker.sock"
    if ! engine_answers; then
        echo "starting a local dockerd at $DOCKER_HOST (log: $state/dockerd.log)"
        setsid dockerd --host "$DOCKER_HOST" --data-root "$PWD/$state/docker-root" \
            --exec-root "$run/exec" --pidfile "$run/docker.pid" --bridge=none --iptables=false \
            >"$state/dockerd.log" 2>&1 < /dev/null &
        for _ in $(seq 60); do engine_answers && break; sleep 1; done
        engine_answers || { echo "dockerd did not start; see $state/dockerd.log" >&2; exit 1; }
    fi
fi

if ! curl -fsS -o /dev/null http://127.0.0.1:5000/v2/; then
    if ! command -v docker-registry >/dev/null 2>&1; then
        [ "$(id -u)" -eq 0 ] && bash scripts/install-test-deps.sh
    fi
    if command -v docker-registry >/dev/null 2>&1; then
        cat >"$state/registry.yml" <<YAML
version: 0.1
storage: {filesystem: {rootdirectory: $PWD/$state/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:5000}
YAML
        echo "starting a local registry at 127.0.0.1:5000 (log: $state/registry.log)"
        setsid docker-registry serve "$state/registry.yml" >"$state/registry.log" 2>&1 < /dev/null &
        for _ in $(seq 20); do curl -fsS -o /dev/null http://127.0.0.1:5000/v2/ && break; sleep 0.5; done
    else
        echo "No registry answers on 127.0.0.1:5000: start one (e.g. Debian's docker-registry)." >&2
        exit 1
    fi
fi

if [ -z "${HELLO_WEBHOOK_SECRET:-}" ]; then
    HELLO_WEBHOOK_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    export HELLO_WEBHOOK_SECRET
    echo "HELLO_WEBHOOK_SECRET=$HELLO_WEBHOOK_SECRET (the GitHub webhook secret of project hello)"
fi
exec "${UV[@]}" run --frozen pipeline serve --config config/pipeline.yaml "$@"
