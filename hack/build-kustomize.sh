#!/usr/bin/env bash
# Builds the kustomize command from its official Go module at the version
# pinned in hack/kustomize/go.mod, into a cache outside the repository, like
# build-helm.sh does for helm. A second run finds the binary and does nothing.
#
# Prints the bin directory on stdout. Set PLUMB_CACHE to move the cache
# (default: ~/.cache/plumb).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mod=sigs.k8s.io/kustomize/kustomize/v5
version=$(awk -v m="$mod" '$1 == "require" && $2 == m {print $3}' "$here/kustomize/go.mod")
[[ -n $version ]] || { echo "build-kustomize: no $mod version in hack/kustomize/go.mod" >&2; exit 1; }
cache=${PLUMB_CACHE:-$HOME/.cache/plumb}
bin="$cache/kustomize-$version/bin"

if [[ -x "$bin/kustomize" ]]; then
	echo "$bin"
	exit 0
fi

# One build at a time: a second caller waits for the first and then finds
# the binary.
mkdir -p "$cache"
exec 9>"$cache/.build-kustomize.lock"
flock 9
if [[ -x "$bin/kustomize" ]]; then
	echo "$bin"
	exit 0
fi

command -v go >/dev/null || { echo "build-kustomize: go is required to build kustomize" >&2; exit 1; }
mkdir -p "$bin"
export GOFLAGS=-mod=mod CGO_ENABLED=0

# The version stamp of kustomize's own release builds (`kustomize version`).
ldflags="-s -w -X sigs.k8s.io/kustomize/api/provenance.version=$version"

start=$SECONDS
echo "build-kustomize: building kustomize $version (first time only)" >&2
(cd "$here/kustomize" && go build -trimpath -ldflags "$ldflags" -o "$bin/kustomize.tmp" "$mod")
mv "$bin/kustomize.tmp" "$bin/kustomize"
echo "build-kustomize: done in $((SECONDS - start))s" >&2
echo "$bin"
