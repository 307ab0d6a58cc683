#!/usr/bin/env bash
# .venv with exactly the versions in uv.lock: the runtime dependencies, plus the extras named in $1
# (comma-separated: test, drill, bench). `--locked` refuses to install when uv.lock no longer satisfies
# pyproject.toml (refresh it with `make lock`), so every install is the locked one. With extras the
# environment is synced exactly (anything else is removed); without, nothing is removed, so `make run`
# keeps what `make test` installed. A second run installs nothing and takes well under a second.
# Packages are installed with their bytecode (`--compile-bytecode`): where PYTHONDONTWRITEBYTECODE is set,
# every interpreter the tests start (each exporter, each CLI run) would otherwise compile aiohttp, the
# Kubernetes client and the rest from source again, about a second of CPU each.
set -euo pipefail
cd "$(dirname "$0")/.."
args=(sync --locked --quiet --compile-bytecode)
IFS=, read -r -a extras <<<"${1:-}"
for extra in "${extras[@]}"; do
  args+=(--extra "$extra")
done
[ ${#extras[@]} -eq 0 ] && args+=(--inexact)
UV_PROJECT_ENVIRONMENT=.venv scripts/uv.sh "${args[@]}"
