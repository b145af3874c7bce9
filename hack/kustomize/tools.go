//go:build tools

// Package tools only records the command hack/build-kustomize.sh builds, so
// that go.mod and go.sum pin every module it needs.
package tools

import (
	_ "sigs.k8s.io/kustomize/kustomize/v5"
)
