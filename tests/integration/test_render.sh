#!/usr/bin/env bash
# Builds kustomize and helm at their pinned versions (hack/build-kustomize.sh,
# hack/build-helm.sh; cached after the first time) and runs the pkg/render
# integration tests with them. Needs no test bed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-build}
[[ "$build" = /* ]] || build=$root/$build
bin=$build/tests/integration/test_render
if [[ ! -x "$bin" ]]; then
	echo "test_render.sh: $bin not built" >&2
	exit 1
fi
export PLUMB_KUSTOMIZE_BIN PLUMB_HELM_BIN PLUMB_ROOT=$root
PLUMB_KUSTOMIZE_BIN=$(bash "$root/hack/build-kustomize.sh")
PLUMB_HELM_BIN=$(bash "$root/hack/build-helm.sh")
"$bin"
