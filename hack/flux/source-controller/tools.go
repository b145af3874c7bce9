//go:build tools

// Package tools only records the command hack/build-flux.sh builds, so that
// go.mod and go.sum pin every module it needs.
package tools

import _ "github.com/fluxcd/source-controller"
