#!/usr/bin/env bash
# Builds what the opt-in workload test bed (hack/cluster.sh up N --workloads)
# runs beside each kube-apiserver: kube-controller-manager and kube-scheduler
# from the k8s.io/kubernetes module and version pinned in hack/k8s/go.mod,
# with the version stamp hack/build-k8s.sh gives kube-apiserver, and kwok from
# the sigs.k8s.io/kwok module pinned in hack/kwok/go.mod. Cached outside the
# repository; a second run finds the binaries and does nothing.
#
# Prints the bin directory on stdout. Set PLUMB_CACHE to move the cache
# (default: ~/.cache/plumb). The KWOK stages the bed applies live in the kwok
# module's kustomize/stage directory, in the Go module cache
# (`go env GOMODCACHE`); cluster.sh finds them from hack/kwok/go.mod.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
k8s_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/k8s/go.mod")
kwok_mod=sigs.k8s.io/kwok
kwok_version=$(awk -v m="$kwok_mod" '$1 == "require" && $2 == m {print $3}' "$here/kwok/go.mod")
[[ -n $k8s_version && -n $kwok_version ]] || { echo "build-workloads: no version in hack/k8s/go.mod or hack/kwok/go.mod" >&2; exit 1; }
cache=${PLUMB_CACHE:-$HOME/.cache/plumb}
bin="$cache/workloads-k8s-$k8s_version-kwok-$kwok_version/bin"
cmds=(kube-controller-manager kube-scheduler kwok)

have_all() {
	local c
	for c in "${cmds[@]}"; do [[ -x "$bin/$c" ]] || return 1; done
}
if have_all; then
	echo "$bin"
	exit 0
fi

# One build at a time: a second caller waits for the first and then finds
# the binaries.
mkdir -p "$cache"
exec 9>"$cache/.build-workloads.lock"
flock 9
if have_all; then
	echo "$bin"
	exit 0
fi

command -v go >/dev/null || { echo "build-workloads: go is required to build the workload binaries" >&2; exit 1; }
mkdir -p "$bin"
export GOFLAGS=-mod=mod CGO_ENABLED=0

# The same version stamp hack/build-k8s.sh gives kube-apiserver.
# shellcheck source=hack/k8s-ldflags.sh
source "$here/k8s-ldflags.sh"
ldflags=$(k8s_ldflags "$k8s_version")

start=$SECONDS
for cmd in kube-controller-manager kube-scheduler; do
	if [[ ! -x "$bin/$cmd" ]]; then
		t=$SECONDS
		echo "build-workloads: building $cmd $k8s_version (first time only; takes a while)" >&2
		(cd "$here/k8s" && go build -trimpath -ldflags "$ldflags" -o "$bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
		mv "$bin/$cmd.tmp" "$bin/$cmd"
		echo "build-workloads: $cmd built in $((SECONDS - t))s" >&2
	fi
done
if [[ ! -x "$bin/kwok" ]]; then
	t=$SECONDS
	echo "build-workloads: building kwok $kwok_version" >&2
	(cd "$here/kwok" && go build -trimpath -ldflags "-s -w -X $kwok_mod/pkg/consts.Version=${kwok_version#v}" -o "$bin/kwok.tmp" "$kwok_mod/cmd/kwok")
	mv "$bin/kwok.tmp" "$bin/kwok"
	echo "build-workloads: kwok built in $((SECONDS - t))s" >&2
fi
echo "build-workloads: done in $((SECONDS - start))s" >&2
echo "$bin"
