#!/usr/bin/env bash
# Builds the helm command from its official Go module at the version pinned in
# hack/helm/go.mod, into a cache outside the repository, like build-k8s.sh does
# for the Kubernetes binaries. A second run finds the binary and does nothing.
#
# Prints the bin directory on stdout. Set PLUMB_CACHE to move the cache
# (default: ~/.cache/plumb).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
helm_version=$(awk '$1 == "require" && $2 == "helm.sh/helm/v3" {print $3}' "$here/helm/go.mod")
[[ -n $helm_version ]] || { echo "build-helm: no helm.sh/helm/v3 version in hack/helm/go.mod" >&2; exit 1; }
cache=${PLUMB_CACHE:-$HOME/.cache/plumb}
bin="$cache/helm-$helm_version/bin"

if [[ -x "$bin/helm" ]]; then
	echo "$bin"
	exit 0
fi

# One build at a time: a second caller waits for the first and then finds
# the binary.
mkdir -p "$cache"
exec 9>"$cache/.build-helm.lock"
flock 9
if [[ -x "$bin/helm" ]]; then
	echo "$bin"
	exit 0
fi

command -v go >/dev/null || { echo "build-helm: go is required to build helm" >&2; exit 1; }
mkdir -p "$bin"
export GOFLAGS=-mod=mod CGO_ENABLED=0

# The same version stamps as Helm's own Makefile: the release, and the
# Kubernetes version `helm lint` and `helm template` assume without a cluster
# (client-go v0.X.Y stands for Kubernetes 1.X).
client_go=$(cd "$here/helm" && go list -m -f '{{.Version}}' k8s.io/client-go)
k8s_minor=${client_go#v0.}; k8s_minor=${k8s_minor%%.*}
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
	ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done

start=$SECONDS
echo "build-helm: building helm $helm_version (first time only)" >&2
(cd "$here/helm" && go build -trimpath -ldflags "$ldflags" -o "$bin/helm.tmp" helm.sh/helm/v3/cmd/helm)
mv "$bin/helm.tmp" "$bin/helm"
echo "build-helm: done in $((SECONDS - start))s" >&2
echo "$bin"
