//go:build tools

// Package tools pins Cloudflare's Prometheus rule linter (cmd/pint) in this module's go.mod.
package tools

import _ "github.com/cloudflare/pint/cmd/pint"
