#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from their official Go modules at the
# versions pinned in hack/k8s/go.mod and hack/etcd/go.mod, into a cache outside
# the repository. A second run finds the binaries and does nothing.
#
# Prints the bin directory on stdout. Set PLUMB_CACHE to move the cache
# (default: ~/.cache/plumb).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
k8s_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/k8s/go.mod")
etcd_version=$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" {print $3}' "$here/etcd/go.mod")
cache=${PLUMB_CACHE:-$HOME/.cache/plumb}
bin="$cache/k8s-$k8s_version-etcd-$etcd_version/bin"

if [[ -x "$bin/kube-apiserver" && -x "$bin/kubectl" && -x "$bin/etcd" ]]; then
	echo "$bin"
	exit 0
fi

# One build at a time: a second caller waits for the first and then finds
# the binaries.
mkdir -p "$cache"
exec 9>"$cache/.build-k8s.lock"
flock 9
if [[ -x "$bin/kube-apiserver" && -x "$bin/kubectl" && -x "$bin/etcd" ]]; then
	echo "$bin"
	exit 0
fi

command -v go >/dev/null || { echo "build-k8s: go is required to build the test binaries" >&2; exit 1; }
mkdir -p "$bin"
export GOFLAGS=-mod=mod CGO_ENABLED=0

# shellcheck source=hack/k8s-ldflags.sh
source "$here/k8s-ldflags.sh"
ldflags=$(k8s_ldflags "$k8s_version")

start=$SECONDS
for cmd in kube-apiserver kubectl; do
	if [[ ! -x "$bin/$cmd" ]]; then
		echo "build-k8s: building $cmd $k8s_version (first time only; takes a while)" >&2
		(cd "$here/k8s" && go build -trimpath -ldflags "$ldflags" -o "$bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
		mv "$bin/$cmd.tmp" "$bin/$cmd"
	fi
done
if [[ ! -x "$bin/etcd" ]]; then
	echo "build-k8s: building etcd $etcd_version" >&2
	(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" .)
	mv "$bin/etcd.tmp" "$bin/etcd"
fi
echo "build-k8s: done in $((SECONDS - start))s" >&2
echo "$bin"
