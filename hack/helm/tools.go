//go:build tools

// Package tools only records the command hack/build-helm.sh builds, so that
// go.mod and go.sum pin every module it needs.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
