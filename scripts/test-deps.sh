#!/usr/bin/env bash
# Install what the test suite needs: the Debian packages that ship the real servers the tests start,
# and the Python environment. Safe to re-run; installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# binary -> Debian package that ships it
declare -A PACKAGES=(
  [redis-server]=redis-server
  [redis-cli]=redis-tools
  [psql]=postgresql-client
  [pgbouncer]=pgbouncer
  [promtool]=prometheus
  [amtool]=prometheus-alertmanager
  [prometheus-alertmanager]=prometheus-alertmanager
  [victoria-metrics]=victoria-metrics
  [vmagent]=victoria-metrics
  [vmalert]=victoria-metrics
  [dnsmasq]=dnsmasq-base
  [prometheus-redis-exporter]=prometheus-redis-exporter
  [prometheus-blackbox-exporter]=prometheus-blackbox-exporter
)
# `make bench` only (BENCH=1): the load generator. Tests never need it.
if [ -n "${BENCH:-}" ]; then
  PACKAGES[wrk]=wrk
fi
missing=()
for binary in "${!PACKAGES[@]}"; do
  if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$binary" >/dev/null 2>&1; then
    missing+=("${PACKAGES[$binary]}")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-deps: missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "test-deps: installing ${missing[*]}"
  apt-get update -qq
  # Debian's packaging would start the daemons it installs: the tests start their own instances.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

scripts/venv.sh test
