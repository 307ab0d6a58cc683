#!/usr/bin/env bash
# Build the tests' Go peers and tools from the project's own Go modules under tests/peers/ (each go.mod
# and go.sum pins every module by exact version; no module source and no binary is committed) into
# tests/peers/bin/ (ignored). A binary is rebuilt only when its inputs change: the Go version, its module's
# go.mod and go.sum (or the -modfile it names) and, for a peer of ours, its own source.
# Prints how long each build took and the binary's size. A built binary is also kept in a per-user cache
# keyed by the same stamp (only the newest per peer), so a new clone (CI clones afresh) copies it instead
# of relinking it from Go's build cache (about two minutes for the Kubernetes binaries).
set -euo pipefail
cd "$(dirname "$0")/../tests/peers"
export PATH="$PATH:/usr/local/go/bin"
export GOFLAGS="${GOFLAGS:--buildvcs=false}" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
command -v go >/dev/null || { echo "go-peers: the go command is not installed (Go 1.26 is on this machine kind)" >&2; exit 1; }
BIN="$PWD/bin"
CACHE="${HONEYDUE_PEER_CACHE:-${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/honeydue-exporter/go-peers}"

# name, module directory (relative to tests/peers), package, extra `go build` flags
TARGETS=(
  "asynqpeer . ./cmd/asynqpeer"
  "asynqpeer-v025 . ./cmd/asynqpeer -modfile=go.asynq-v025.mod"
  "vmalert-tool vmalert-tool github.com/VictoriaMetrics/VictoriaMetrics/app/vmalert-tool"
  "pint pint github.com/cloudflare/pint/cmd/pint -ldflags=-X=main.version=v0.87.0"
  # The Kubernetes control plane (tests/peers/kube: k8s.io/kubernetes forces its own dependency graph).
  # gitVersion is set as k3s stamps it, so /version and the nodes' kubelet versions read like k3s.
  "etcd kube ./cmd/etcd"
  "kube-apiserver kube k8s.io/kubernetes/cmd/kube-apiserver -ldflags=-X=k8s.io/component-base/version.gitVersion=v1.35.4+k3s1"
  "kube-controller-manager kube k8s.io/kubernetes/cmd/kube-controller-manager -ldflags=-X=k8s.io/component-base/version.gitVersion=v1.35.4+k3s1"
  "kustomize kube sigs.k8s.io/kustomize/kustomize/v5"
  # metrics-server serves metrics.k8s.io on the test control plane (own module: it pins k8s.io/* v0.33.2).
  "metrics-server metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server"
  # The Prometheus operator's API (own module: pkg/apis/monitoring v0.95): promdecode decodes the rendered
  # PrometheusRule/ServiceMonitor/PodMonitor strictly with its Go types; controller-gen makes its CRDs (below).
  "promdecode operators ./cmd/promdecode"
  "controller-gen operators sigs.k8s.io/controller-tools/cmd/controller-gen"
)

# Keep $BIN/$1 in the cache under stamp $2, dropping that peer's older entries (best effort: a read-only
# or full cache only costs the next clone a build).
keep() {
  [ -x "$CACHE/$1/$2" ] && return 0
  if mkdir -p "$CACHE/$1" 2>/dev/null && cp -f "$BIN/$1" "$CACHE/$1/$2.tmp" 2>/dev/null; then
    find "$CACHE/$1" -mindepth 1 -maxdepth 1 ! -name "$2.tmp" -exec rm -f {} + 2>/dev/null || true
    mv "$CACHE/$1/$2.tmp" "$CACHE/$1/$2" 2>/dev/null || true
  else
    rm -f "$CACHE/$1/$2.tmp" 2>/dev/null || true
  fi
}

mkdir -p "$BIN"
for target in "${TARGETS[@]}"; do
  read -r name dir pkg flags <<<"$target"
  inputs=("$dir/go.mod" "$dir/go.sum")
  if [[ "${flags:-}" =~ -modfile=([^ ]+) ]]; then
    mod="${BASH_REMATCH[1]}"
    inputs=("$dir/$mod" "$dir/${mod%.mod}.sum")
  fi
  # The peer's own source is its package directory when it is ours; a module's package is pinned by go.sum.
  [[ "$pkg" == ./* ]] && mapfile -t -O "${#inputs[@]}" inputs < <(find "$dir/$pkg" -type f -name '*.go' | sort)
  stamp=$( { go version; echo "$target"; cat "${inputs[@]}"; } | sha256sum | cut -c1-64)
  if [ -x "$BIN/$name" ] && [ "$(cat "$BIN/.$name.stamp" 2>/dev/null)" = "$stamp" ]; then
    keep "$name" "$stamp"
    echo "go-peers: $name up to date"
    continue
  fi
  cached="$CACHE/$name/$stamp"
  if [ -x "$cached" ]; then
    cp -f "$cached" "$BIN/$name.tmp"
    mv "$BIN/$name.tmp" "$BIN/$name"
    echo "$stamp" > "$BIN/.$name.stamp"
    echo "go-peers: $name copied from $CACHE"
    continue
  fi
  start=$EPOCHREALTIME
  # shellcheck disable=SC2086 # flags are words
  (cd "$dir" && go build -trimpath ${flags:-} -o "$BIN/$name.tmp" "$pkg")
  mv "$BIN/$name.tmp" "$BIN/$name"
  echo "$stamp" > "$BIN/.$name.stamp"
  keep "$name" "$stamp"
  awk -v n="$name" -v a="$start" -v b="$EPOCHREALTIME" -v s="$(du -m "$BIN/$name" | cut -f1)" \
    'BEGIN { printf "go-peers: built %s in %.1f s (%d MiB)\n", n, b - a, s }'
done

# The Prometheus operator's CRDs, generated from its Go types (the module's pinned version) by controller-gen,
# for the test cluster's API server (tests/test_kube_overlay.py). Regenerated when the module or the binary changes.
crds="$BIN/prometheus-operator-crds"
stamp=$( { cat operators/go.sum "$BIN/.controller-gen.stamp"; } | sha256sum | cut -c1-64)
if [ "$(cat "$crds/.stamp" 2>/dev/null)" != "$stamp" ]; then
  start=$EPOCHREALTIME
  rm -rf "$crds.tmp"
  (cd operators && "$BIN/controller-gen" crd:crdVersions=v1 \
    paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 output:crd:dir="$crds.tmp")
  echo "$stamp" > "$crds.tmp/.stamp"
  rm -rf "$crds"
  mv "$crds.tmp" "$crds"
  awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "go-peers: generated the Prometheus operator CRDs in %.1f s\n", b - a }'
else
  echo "go-peers: prometheus-operator-crds up to date"
fi
