#!/usr/bin/env bash
# The whole check suite against the newest versions pyproject.toml allows, not the locked ones: what an
# upgrade (`make lock UPGRADE=1`) would bring, seen before anyone decides on it. Builds a throw-away venv
# (removed at the end), prints which pins would move, then runs `make check` in it. The lock is not touched.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-deps.sh  # packages, servers, Go peers (and the locked .venv, which this run leaves alone)
dir=$(mktemp -d "${TMPDIR:-/tmp}/honeydue-latest.XXXXXX")
trap 'rm -rf "$dir"' EXIT
echo "test-latest: pins that would move (uv lock --upgrade --dry-run):"
scripts/uv.sh lock --upgrade --dry-run 2>&1 | sed 's/^/  /'
scripts/uv.sh venv --quiet "$dir/venv"
VIRTUAL_ENV="$dir/venv" scripts/uv.sh pip install --quiet --compile-bytecode --upgrade --resolution highest -e ".[test]"
echo "test-latest: running the checks in $dir/venv"
make --no-print-directory check VENV="$dir/venv"
