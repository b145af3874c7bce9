#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller, which the bench
# runs beside plumb (bench/e2e/flux.sh), from their official Go modules at the
# versions pinned in hack/flux/*/go.mod, into a cache outside the repository.
# A second run finds the binaries and does nothing. Bench only: no test needs
# them.
#
# Each controller has its own wrapper module under hack/flux/ (why: see the
# comment at the top of its go.mod); its go.sum is committed, so a build needs
# the module proxy only to download, never `go mod tidy`.
#
# Prints the bin directory on stdout. Set PLUMB_CACHE to move the cache
# (default: ~/.cache/plumb). The CRDs the controllers serve live in each
# controller module's config/crd/bases, in the Go module cache
# (`go env GOMODCACHE`); flux_crd_dirs in bench/e2e/flux.sh finds them.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cmds=(source-controller kustomize-controller)
version=
for c in "${cmds[@]}"; do
	v=$(awk -v m="github.com/fluxcd/$c" '$1 == "require" && $2 == m {print $3}' "$here/flux/$c/go.mod")
	[[ -n $v ]] || { echo "build-flux: no github.com/fluxcd/$c version in hack/flux/$c/go.mod" >&2; exit 1; }
	[[ -z $version || $v == "$version" ]] || { echo "build-flux: hack/flux pins $c $v, not $version" >&2; exit 1; }
	version=$v
done
cache=${PLUMB_CACHE:-$HOME/.cache/plumb}
bin="$cache/flux-$version/bin"

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
exec 9>"$cache/.build-flux.lock"
flock 9
if have_all; then
	echo "$bin"
	exit 0
fi

command -v go >/dev/null || { echo "build-flux: go is required to build the Flux controllers" >&2; exit 1; }
mkdir -p "$bin"
export GOFLAGS=-mod=mod CGO_ENABLED=0

start=$SECONDS
for c in "${cmds[@]}"; do
	if [[ ! -x "$bin/$c" ]]; then
		t=$SECONDS
		echo "build-flux: building $c $version (first time only; takes a few minutes)" >&2
		# -s -w as the controllers' own release builds (source-controller's Makefile).
		(cd "$here/flux/$c" && go build -trimpath -ldflags "-s -w" -o "$bin/$c.tmp" "github.com/fluxcd/$c")
		mv "$bin/$c.tmp" "$bin/$c"
		echo "build-flux: $c built in $((SECONDS - t))s" >&2
	fi
done
echo "build-flux: done in $((SECONDS - start))s" >&2
echo "$bin"
