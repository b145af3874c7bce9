#!/usr/bin/env bash
# Benchmark for pkg/manifest and pkg/diff: 10,000 ConfigMaps of ~1 KiB.
#   bash bench/manifest/run.sh [--quick]
# Env: BUILD (default build) with tools/manifest_bench and tools/manifest_json
# built (`make BUILD=… all`); PLUMB_K8S_BIN (dir with kubectl) for the
# kubectl comparison, skipped when kubectl is absent.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-build}
[[ $build = /* ]] || build=$root/$build
kubectl=${PLUMB_K8S_BIN:-/root/.cache/plumb/k8s-v1.36.3-etcd-v3.6.8/bin}/kubectl
n=10000 rounds=5
[[ ${1:-} = --quick ]] && n=1000 rounds=3

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/tools/manifest_bench" gen "$tmp/cms.yaml" "$n"
echo "== in-process (best of $rounds)"
"$build/tools/manifest_bench" run "$tmp/cms.yaml" "$rounds"

echo "== whole process on the same file: plumb (tools/manifest_json) vs kubectl"
t0=$(date +%s.%N)
"$build/tools/manifest_json" "$tmp/cms.yaml" > "$tmp/plumb.json"
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "plumb manifest_json: %.0f ms\n", (b - a) * 1000 }'
if [[ -x $kubectl ]]; then
	cat > "$tmp/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: none, context: {cluster: none}}]
current-context: none
KC
	t0=$(date +%s.%N)
	"$kubectl" --kubeconfig "$tmp/kubeconfig" annotate --local -f "$tmp/cms.yaml" bench- -o json > "$tmp/kubectl.json"
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "kubectl annotate --local -o json: %.0f ms\n", (b - a) * 1000 }'
else
	echo "kubectl not found at $kubectl: comparison skipped"
fi
