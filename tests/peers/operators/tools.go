//go:build tools

// Package tools pins controller-gen (sigs.k8s.io/controller-tools), which generates the Prometheus operator's
// CustomResourceDefinitions from its Go types in this module (scripts/go-peers.sh).
package tools

import _ "sigs.k8s.io/controller-tools/cmd/controller-gen"
