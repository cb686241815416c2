#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine, as root: installs the real services the
# tests run against (Docker engine, registries, skopeo, PostgreSQL, OpenSSH, the pinned Go tools),
# the locked Python dependencies, runs the static checks (scripts/check.sh), then pytest. The
# tests start and stop the services themselves.
# Extra arguments go to pytest and skip the static checks (e.g. `bash scripts/test.sh tests/unit -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
source scripts/uv.sh
"${UV[@]}" sync --frozen --quiet
started=$(date +%s)
rc=0
if [ "$#" -eq 0 ]; then
    bash scripts/check.sh || rc=$?
fi
"${UV[@]}" run --frozen pytest "$@" || rc=$?
echo "test suite wall time: $(( $(date +%s) - started )) s"
exit "$rc"
