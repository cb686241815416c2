#!/usr/bin/env bash
# The static checks the test command runs first: lint, formatting, types (strict on pipeline/ and
# workers/), and the import layers (pyproject.toml [tool.importlinter]). Each runs even when an
# earlier one failed, so one run shows everything; the exit code is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/uv.sh
run() { "${UV[@]}" run --frozen "$@"; }
failed=()
run ruff check pipeline workers tests bench migrations || failed+=("ruff check")
run ruff format --check --quiet pipeline workers tests bench migrations || failed+=("ruff format (run: uv run ruff format)")
run mypy || failed+=("mypy")
run lint-imports --no-cache || failed+=("import-linter")
if [ "${#failed[@]}" -gt 0 ]; then
    printf 'checks failed: %s\n' "${failed[*]}" >&2
    exit 1
fi
echo "checks passed: ruff check, ruff format, mypy --strict, import-linter"
