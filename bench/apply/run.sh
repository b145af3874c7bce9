#!/usr/bin/env bash
# Benchmark of the apply engine (pkg/apply) on a fresh local cluster:
#   ceiling  the apiserver's own ceiling: the same server-side-apply PATCH
#            requests from a tight parallel loop on pkg/kube, no plumb logic
#   plumb    initial apply of N ConfigMaps (+ their Namespace) with the engine,
#            then a no-op pass (same engine) and a no-op pass after a restart
#            (new engine, nothing cached)
#   kubectl  `kubectl apply --server-side -f FILE` on the same objects
# The three run interleaved, ROUNDS times per size, each into its own
# namespace of one fresh cluster per size, so that load from other work on
# the machine hits all of them alike. Prints the tool's key=value lines.
#
#   bash bench/apply/run.sh [BUILD_DIR] [N...]     (default: build, 2000 10000)
#   env: THREADS (8), ROUNDS (2), PLUMB_TESTBED (/tmp/plumb-bench-apply)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
shift || true
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(2000 10000)
threads=${THREADS:-8}
rounds=${ROUNDS:-2}
bin=${PLUMB_K8S_BIN:-/root/.cache/plumb/k8s-v1.36.3-etcd-v3.6.8/bin}
export PLUMB_TESTBED=${PLUMB_TESTBED:-/tmp/plumb-bench-apply}
tool=$root/$build/tools/apply_bench
[[ -x $tool ]] || { echo "build it first: make BUILD=$build $build/tools/apply_bench" >&2; exit 1; }

trap 'bash "$root/hack/cluster.sh" down >/dev/null 2>&1 || true' EXIT
kc=$PLUMB_TESTBED/clusters/c1/kubeconfig
for n in "${sizes[@]}"; do
	bash "$root/hack/cluster.sh" down >/dev/null 2>&1 || true
	bash "$root/hack/cluster.sh" up 1 >/dev/null 2>&1
	sleep 5   # let the fresh apiserver finish its start-up work
	for r in $(seq 1 "$rounds"); do
		echo "# n=$n round=$r load: $(cut -d' ' -f1-3 /proc/loadavg)"
		"$tool" "$kc" ceiling "ceil-$n-$r" "$n" "$threads"
		/usr/bin/time -f "mode=plumb-process n=$n wall_s=%e peak_rss_kib=%M" \
			"$tool" "$kc" plumb "plumb-$n-$r" "$n" "$threads"
		yaml=$(mktemp /tmp/plumb-bench-apply.XXXXXX)
		"$tool" - yaml "kubectl-$n-$r" "$n" >"$yaml"
		start=$(date +%s.%N)
		/usr/bin/time -f "mode=kubectl-process n=$n wall_s=%e peak_rss_kib=%M" \
			"$bin/kubectl" --kubeconfig "$kc" apply --server-side -f "$yaml" >/dev/null
		end=$(date +%s.%N)
		echo "mode=kubectl n=$n seconds=$(echo "$end - $start" | bc -l | xargs printf '%.2f')" \
			"objects_per_s=$(echo "($n + 1) / ($end - $start)" | bc -l | xargs printf '%.0f')"
		rm -f "$yaml"
	done
done
