#!/usr/bin/env bash
# The real tools users run that exist only as Go programs, built pinned with `go install` from
# the Go module proxy into a cache keyed by module and version, so that a warm machine never
# rebuilds them and a fresh one builds them once:
#   buildkitd, buildctl (BuildKit daemon and client), buildx (as a Docker CLI plugin),
#   cosign 2 and cosign 3 (side by side), crane, registry (CNCF distribution 3).
# Each tool lands in $TOOLS/<name>@<version>/; $TOOLS/bin holds one link per tool under its
# stable name (cosign2, cosign3, registry3, ...) and $TOOLS/docker-config/cli-plugins holds
# docker-buildx for a DOCKER_CONFIG the tests own. Prints one line per tool and, last, $TOOLS.
# Usage: bash scripts/install-go-tools.sh [NAME ...]   (default: every tool)
set -euo pipefail

TOOLS=${PIPELINE_TOOLS_DIR:-/var/cache/pipeline/tools}
say() { echo "install-go-tools: $*" >&2; }

# name  link-name  module  package@version  [the module's version variable, set with -ldflags -X]
# A change to how a tool is built bumps RECIPE, so warm machines rebuild it once.
RECIPE=2
SPECS=(
  "buildkitd buildkitd github.com/moby/buildkit github.com/moby/buildkit/cmd/buildkitd@v0.32.2 github.com/moby/buildkit/version.Version"
  "buildctl  buildctl  github.com/moby/buildkit github.com/moby/buildkit/cmd/buildctl@v0.32.2 github.com/moby/buildkit/version.Version"
  "buildx    buildx    github.com/docker/buildx github.com/docker/buildx/cmd/buildx@v0.36.1 github.com/docker/buildx/version.Version"
  "cosign    cosign2   github.com/sigstore/cosign/v2 github.com/sigstore/cosign/v2/cmd/cosign@v2.6.4"
  "cosign    cosign3   github.com/sigstore/cosign/v3 github.com/sigstore/cosign/v3/cmd/cosign@v3.1.2"
  "crane     crane     github.com/google/go-containerregistry github.com/google/go-containerregistry/cmd/crane@v0.22.1"
  "registry  registry3 github.com/distribution/distribution/v3 github.com/distribution/distribution/v3/cmd/registry@v3.1.1"
)

# `go install pkg@version` refuses a module whose go.mod has exclude or replace directives
# (buildkit v0.32.2 has excludes). Then build the same pinned module from the proxy as the
# main module, as its own go.mod and go.sum say: a copy of its source, `go build` inside it.
build_as_main_module() {
    local module=$1 package=$2 version=$3 out=$4 ldflags=$5 src
    src=$(go mod download -json "$module@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    [ -n "$src" ] || { say "go mod download $module@$version gave no source directory"; return 1; }
    local work
    work=$(mktemp -d)
    cp -r "$src/." "$work/"
    chmod -R u+w "$work"
    (cd "$work" && GOFLAGS="-buildvcs=false -mod=mod" go build -trimpath -ldflags "$ldflags" -o "$out/" \
        "./${package#"$module"/}")
    local rc=$?
    rm -rf "$work"
    return $rc
}

if ! command -v go >/dev/null 2>&1; then
    for candidate in /usr/local/go/bin/go /usr/lib/go/bin/go; do
        if [ -x "$candidate" ]; then PATH="$(dirname "$candidate"):$PATH"; break; fi
    done
fi
command -v go >/dev/null 2>&1 || { say "go is not installed (this machine kind ships it)"; exit 1; }

wanted() {
    local link=$1
    [ -z "$SELECTED" ] && return 0
    for name in $SELECTED; do [ "$name" = "$link" ] && return 0; done
    return 1
}
SELECTED="$*"

build_tool() {
    local module=$1 package=$2 version=$3 out=$4 version_var=$5 ldflags=""
    # a tool built from source reports v0.0.0+unknown unless told its version (doctor shows it)
    [ -n "$version_var" ] && ldflags="-X $version_var=$version"
    if GOBIN="$out" GOFLAGS=-buildvcs=false go install -ldflags "$ldflags" "$package@$version"; then return 0; fi
    echo "go install refused $package@$version; building it as the main module"
    build_as_main_module "$module" "$package" "$version" "$out" "$ldflags"
}

mkdir -p "$TOOLS/bin" "$TOOLS/docker-config/cli-plugins"
for spec in "${SPECS[@]}"; do
    read -r binary link module package version_var <<<"$spec"
    wanted "$link" || continue
    version=${package##*@}
    module_path=${package%@*}
    dir="$TOOLS/$link@$version${version_var:+-r$RECIPE}"
    if [ -x "$dir/$binary" ]; then
        say "$link $version cached"
    else
        started=$(date +%s)
        rm -rf "$dir.partial"
        mkdir -p "$dir.partial"
        if ! build_tool "$module" "$module_path" "$version" "$dir.partial" "${version_var:-}" \
                >"$dir.partial/build.log" 2>&1; then
            say "building $package failed:"
            tail -n 30 "$dir.partial/build.log" >&2
            exit 1
        fi
        mv "$dir.partial" "$dir"
        say "$link $version built in $(( $(date +%s) - started )) s"
    fi
    ln -sfn "$dir/$binary" "$TOOLS/bin/$link"
    if [ "$link" = buildx ]; then
        ln -sfn "$dir/$binary" "$TOOLS/docker-config/cli-plugins/docker-buildx"
    fi
done
echo "$TOOLS"
