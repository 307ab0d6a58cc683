#!/usr/bin/env bash
# Everything `make test` needs on a machine that starts with none of it: the Debian packages that ship the
# real servers the tests start, the machine's PostgreSQL and Redis running (scripts/services.sh), the
# Python environment (scripts/venv.sh) and the Go peers built from their pinned modules
# (scripts/go-peers.sh). Idempotent: a second run installs nothing and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

step() {  # step NAME COMMAND...: run one set-up step and say how long it took
  local name="$1" start
  shift
  start=$EPOCHREALTIME
  "$@"
  awk -v n="$name" -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "test-deps: %-9s %6.1f s\n", n, b - a }'
}

# binary -> Debian package that ships it
declare -A PACKAGES=(
  [redis-server]=redis-server
  [redis-cli]=redis-tools
  [psql]=postgresql-client
  [pg_ctlcluster]=postgresql-common
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
  [openssl]=openssl
  [ss]=iproute2
  # The status page's browser test (tests/test_status_page.py): Debian's Chromium and its ChromeDriver,
  # the same version, since a test tool's own browser download cannot reach its host here.
  [chromium]=chromium
  [chromedriver]=chromium-driver
  [unshare]=util-linux  # the in-cluster exporter's private mount namespace (testbed/kube/incluster.py)
  # The image test (tests/test_image.py): a base assembled from Debian packages (no registry can be pulled
  # from), built and run with podman on the vfs driver and runc (crun refuses this machine's hybrid cgroups).
  [podman]=podman
  [mmdebstrap]=mmdebstrap
  [runc]=runc
)
# `make bench` only (BENCH=1): the load generator. Tests never need it.
if [ -n "${BENCH:-}" ]; then
  PACKAGES[wrk]=wrk
fi

packages() {
  local missing=() binary
  for binary in "${!PACKAGES[@]}"; do
    command -v "$binary" >/dev/null 2>&1 || missing+=("${PACKAGES[$binary]}")
  done
  # The PostgreSQL server itself has no binary on PATH (Debian keeps it under /usr/lib/postgresql/N/bin).
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
  [ ${#missing[@]} -eq 0 ] && return 0
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-deps: missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "test-deps: installing ${missing[*]}"
  apt-get update -qq
  # Debian's packaging would start the daemons it installs: scripts/services.sh starts the two the tests
  # share, the tests start their own private instances of the rest. Keep a policy-rc.d the machine has.
  local own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
  return 0
}

step packages packages
step services scripts/services.sh
step venv scripts/venv.sh "test${BENCH:+,bench}"  # make bench adds matplotlib (the scale plots)
step go-peers scripts/go-peers.sh
