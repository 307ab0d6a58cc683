//go:build tools

// Package tools pins VictoriaMetrics' rule test tool (app/vmalert-tool) in this module's go.mod.
package tools

import _ "github.com/VictoriaMetrics/VictoriaMetrics/app/vmalert-tool"
