#!/usr/bin/env bash
# The first command: from a fresh Debian 12 machine (as root) to the sample application
# (examples/hello) built from a signed push webhook and promoted to dev, then keeps serving.
#
#   1. installs only what the service needs when it is missing (scripts/install-service-deps.sh:
#      Docker engine, registry, static busybox) and the locked Python dependencies (uv);
#   2. uses the engine DOCKER_HOST names, else the system one, else starts one at
#      unix:///tmp/pipeline-dockerd/docker.sock; a registry on 127.0.0.1:5000 (started when none
#      answers) or PIPELINE_QUICKSTART_REGISTRY=host:port;
#   3. makes examples/hello a local Git repository under .pipeline-data/, imports busybox as its
#      offline base image, writes .pipeline-data/quickstart.yaml (config/pipeline.yaml with that
#      repository), keeps the webhook secret and an admin token under .pipeline-data/secrets/;
#   4. runs `pipeline serve`, sends the signed push webhook, follows the build, waits for the
#      promotion to dev, prints the matrix, the page's address and the exports for a new shell.
#
# Extra arguments go to `pipeline serve` (e.g. --port 9000). PIPELINE_QUICKSTART_SERVE=no stops
# the service once the sample is promoted instead of serving on (SIGTERM/Ctrl-C also stop it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$(date +%s)
data=$root/.pipeline-data
state=$data/services
secrets=$data/secrets
registry=${PIPELINE_QUICKSTART_REGISTRY:-127.0.0.1:5000}
keep_serving=${PIPELINE_QUICKSTART_SERVE:-yes}
host=127.0.0.1 port=8080
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        --port) port=${args[i + 1]:-8080} ;;
        --port=*) port=${args[i]#--port=} ;;
        --host) host=${args[i + 1]:-127.0.0.1} ;;
        --host=*) host=${args[i]#--host=} ;;
    esac
done
mkdir -p "$state"

# 1. What the service needs, and nothing of the test toolchain.
SAY_AS=quickstart
source scripts/_apt.sh
elapsed() { echo "$(( $(date +%s) - started )) s"; }
say() { echo "quickstart [$(elapsed)]: $*"; }
if ! have_service_deps; then
    if [ "$(id -u)" -ne 0 ]; then
        say "the Docker engine, docker-registry, static busybox, git or curl is missing:" >&2
        say "run as root (it installs them with apt-get) or install them, then run this again" >&2
        exit 1
    fi
    bash scripts/install-service-deps.sh
fi
source scripts/uv.sh
"${UV[@]}" sync --frozen --quiet --no-dev --inexact   # the service's dependencies; keeps a developer's tools
say "Python dependencies in $root/.venv"
pipeline=$root/.venv/bin/pipeline
python=$root/.venv/bin/python
docker_cli=/usr/bin/docker

# 2. The engine and the registry.
engine_answers() { DOCKER_HOST=$1 "$docker_cli" version >/dev/null 2>&1; }
if [ -n "${DOCKER_HOST:-}" ]; then
    engine_answers "$DOCKER_HOST" || { say "no Docker engine answers at DOCKER_HOST=$DOCKER_HOST" >&2; exit 1; }
elif engine_answers unix:///var/run/docker.sock; then
    export DOCKER_HOST=unix:///var/run/docker.sock
else
    run=/tmp/pipeline-dockerd
    export DOCKER_HOST=unix://$run/docker.sock
    if ! engine_answers "$DOCKER_HOST"; then
        [ "$(id -u)" -eq 0 ] || { say "no Docker engine answers: start one, or run this as root" >&2; exit 1; }
        mkdir -p "$run"
        say "starting dockerd at $DOCKER_HOST (log: $state/dockerd.log)"
        # No bridge: builds use --network host (config: build.network), engines can run side by side.
        setsid dockerd --host "$DOCKER_HOST" --data-root "$state/docker-root" --exec-root "$run/exec" \
            --pidfile "$run/docker.pid" --bridge=none --iptables=false \
            >"$state/dockerd.log" 2>&1 </dev/null &
        for _ in $(seq 120); do engine_answers "$DOCKER_HOST" && break; sleep 0.5; done
        engine_answers "$DOCKER_HOST" || { say "dockerd did not start; see $state/dockerd.log" >&2; exit 1; }
    fi
fi
say "engine at $DOCKER_HOST"

registry_answers() { curl -fsS -o /dev/null "http://$registry/v2/"; }
if ! registry_answers; then
    if [ -n "${PIPELINE_QUICKSTART_REGISTRY:-}" ]; then
        say "no registry answers at PIPELINE_QUICKSTART_REGISTRY=$registry" >&2
        exit 1
    fi
    cat >"$state/registry.yml" <<YAML
version: 0.1
storage: {filesystem: {rootdirectory: $state/registry}, delete: {enabled: true}}
http: {addr: $registry}
YAML
    say "starting a registry at $registry (log: $state/registry.log)"
    setsid docker-registry serve "$state/registry.yml" >"$state/registry.log" 2>&1 </dev/null &
    for _ in $(seq 40); do registry_answers && break; sleep 0.5; done
    registry_answers || { say "the registry did not start; see $state/registry.log" >&2; exit 1; }
fi
say "registry at $registry"

# 3. The sample as a local Git repository, its offline base image, the config, the secrets.
repo=$data/examples/hello
if [ ! -d "$repo/.git" ]; then
    git init -q -b main "$repo"
fi
cp -a examples/hello/. "$repo/"
git -C "$repo" add -A
if ! git -C "$repo" diff --cached --quiet 2>/dev/null || ! git -C "$repo" rev-parse -q --verify HEAD >/dev/null; then
    git -C "$repo" -c user.name=quickstart -c user.email=quickstart@localhost \
        commit -q -m "hello: the quickstart's sample ($(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo local))"
fi
say "sample repository $repo at $(git -C "$repo" rev-parse --short HEAD)"

base=$registry/examples/busybox:1
if ! curl -fsS -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$registry/v2/examples/busybox/manifests/1"; then
    rootfs=$(mktemp -d)
    mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
    chmod 1777 "$rootfs/tmp"
    cp /bin/busybox "$rootfs/bin/busybox"
    for applet in $(/bin/busybox --list); do [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"; done
    printf 'root:x:0:0:root:/root:/bin/sh\nhello:x:10001:10001::/app:/bin/false\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nhello:x:10001:\n' >"$rootfs/etc/group"
    tar -C "$rootfs" -c . | "$docker_cli" import --change 'CMD ["/bin/sh"]' - "$base" >/dev/null
    rm -rf "$rootfs"
    "$docker_cli" push "$base" >/dev/null
    say "base image $base imported from /bin/busybox and pushed"
fi

mkdir -p "$secrets"
chmod 700 "$secrets"
if [ ! -s "$secrets/hello-webhook-secret" ]; then
    (umask 077; "$python" -c 'import secrets; print(secrets.token_hex(20))' >"$secrets/hello-webhook-secret")
fi
config=$data/quickstart.yaml
"$python" scripts/quickstart_sample.py config "$config" --base config/pipeline.yaml --data "$data" \
    --registry "$registry" --repo "$repo"
"$pipeline" migrate --config "$config" >/dev/null
say "config $config, database migrated"
if [ ! -s "$secrets/admin-token" ]; then
    (umask 077; "$pipeline" tokens create --config "$config" --name admin --role admin >"$secrets/admin-token" 2>/dev/null)
fi
url=http://$host:$port
cat >"$data/quickstart.env" <<ENV
export DOCKER_HOST=$DOCKER_HOST
export PIPELINE_CONFIG=$config
export PIPELINE_URL=$url
export PIPELINE_TOKEN=\$(cat $secrets/admin-token)
export PATH=$root/.venv/bin:\$PATH
ENV

# 4. Serve, push, follow, wait, show.
serve_pid=""
stop_serving() {
    if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
        kill -TERM "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
}
trap stop_serving EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
"$pipeline" serve --config "$config" "$@" >"$data/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 120); do
    curl -fsS -o /dev/null "$url/healthz" 2>/dev/null && break
    kill -0 "$serve_pid" 2>/dev/null || { tail -n 30 "$data/serve.log" >&2; say "pipeline serve stopped" >&2; exit 1; }
    sleep 0.5
done
say "pipeline serve at $url (log: $data/serve.log)"
export PIPELINE_URL=$url
PIPELINE_TOKEN=$(cat "$secrets/admin-token")
export PIPELINE_TOKEN
if ! "$pipeline" builds ls --limit 1 >/dev/null 2>&1; then   # a data directory whose database was reset
    (umask 077; "$pipeline" tokens create --config "$config" --name admin --role admin >"$secrets/admin-token" 2>/dev/null)
    PIPELINE_TOKEN=$(cat "$secrets/admin-token")
fi

build_id=$("$python" scripts/quickstart_sample.py push --url "$url" --secret-file "$secrets/hello-webhook-secret" --repo "$repo")
if [ -n "$build_id" ]; then
    "$pipeline" logs "$build_id" --follow || { say "build $build_id failed (pipeline builds show $build_id)" >&2; exit 1; }
    "$python" scripts/quickstart_sample.py promoted --url "$url" --token-file "$secrets/admin-token" --build "$build_id"
fi
echo
"$pipeline" envs --project hello
echo
say "the sample was promoted to dev $(elapsed) after this command started"
cat <<TEXT

  page:   $url/   (API token: $secrets/admin-token; OpenAPI: $url/docs)
  image:  $registry/example/hello:dev

  In a new shell, to use the CLI and \`pipeline doctor\` against this service:
    source $data/quickstart.env
  which is:
$(sed 's/^/    /' "$data/quickstart.env")

TEXT
if [ "$keep_serving" = "no" ]; then
    say "PIPELINE_QUICKSTART_SERVE=no: stopping the service"
    exit 0
fi
say "serving until Ctrl-C; the service's log follows"
tail -n 0 -f "$data/serve.log" &
tail_pid=$!
trap 'kill "$tail_pid" 2>/dev/null; stop_serving' EXIT
wait "$serve_pid"
