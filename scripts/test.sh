#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine, as root: installs the real services the
# tests run against (Docker engine, registry, skopeo, PostgreSQL, OpenSSH), the locked Python
# dependencies, then runs pytest. The tests start and stop the services themselves.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/unit -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
source scripts/uv.sh
"${UV[@]}" sync --frozen --quiet
started=$(date +%s)
rc=0
"${UV[@]}" run --frozen pytest "$@" || rc=$?
echo "test suite wall time: $(( $(date +%s) - started )) s"
exit "$rc"
