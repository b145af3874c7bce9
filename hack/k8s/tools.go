//go:build tools

// Package tools only records the commands hack/build-k8s.sh builds, so that
// go.mod and go.sum pin every module they need.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
