#!/usr/bin/env bash
# Run the project's uv (the lock tool) with ARGS, installing it first when needed: `scripts/uv.sh lock`,
# `scripts/uv.sh sync --locked`. Without ARGS it prints the binary's path.
# uv is pinned by version and hash in scripts/uv-requirements.txt and installed with pip --require-hashes
# into a per-user cache keyed by that file's hash, so every clone shares one copy and a new pin installs
# beside the old one. uv uses the machine's Python (never downloads one) and the system's CA certificates
# (a TLS-inspecting proxy's CA is trusted there, not in uv's built-in roots).
set -euo pipefail
cd "$(dirname "$0")/.."
pins=scripts/uv-requirements.txt
key=$(sha256sum "$pins" | cut -c1-16)
home="${HONEYDUE_UV_HOME:-${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/honeydue-exporter/uv-$key}"
uv="$home/bin/uv"
if [ ! -x "$uv" ]; then
  rm -rf "$home.tmp"
  "${PYTHON:-python3}" -m venv "$home.tmp" >&2
  "$home.tmp/bin/python" -m pip install -q --disable-pip-version-check --no-deps --require-hashes -r "$pins" >&2
  rm -rf "$home"
  mv "$home.tmp" "$home"  # the venv's own scripts now name a moved path; uv is a static binary and needs none
fi
[ $# -eq 0 ] && { echo "$uv"; exit 0; }
export UV_PYTHON_DOWNLOADS="${UV_PYTHON_DOWNLOADS:-never}" UV_SYSTEM_CERTS="${UV_SYSTEM_CERTS:-1}"
export UV_PYTHON="${UV_PYTHON:-${PYTHON:-python3}}"
exec "$uv" "$@"
