#!/usr/bin/env bash
# Starts real Git servers (hack/git-servers.sh), runs the pkg/source
# integration tests against them, and always stops them.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-build}
[[ "$build" = /* ]] || build=$root/$build
bin=$build/tests/integration/test_source
if [[ ! -x "$bin" ]]; then
	echo "test_source.sh: $bin not built" >&2
	exit 1
fi
dir=$(mktemp -d /tmp/plumb-git-XXXXXX)
rmdir "$dir"
cleanup() { bash "$root/hack/git-servers.sh" down "$dir"; }
trap cleanup EXIT
bash "$root/hack/git-servers.sh" up "$dir"
set -a
# shellcheck disable=SC1091
. "$dir/env"
set +a
export PLUMB_ROOT=$root
"$bin"
