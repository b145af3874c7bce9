//go:build tools

// Package tools only records the command hack/build-workloads.sh builds, so
// that go.mod and go.sum pin every module it needs.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
