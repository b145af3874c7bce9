#!/usr/bin/env bash
# Differential test: every file in tests/yaml-corpus/ converted by plumb
# (build/tools/manifest_json) and by the real kubectl must give the same JSON
# value; every file in tests/yaml-corpus/invalid/ must be rejected by both.
#
# kubectl runs offline: `kubectl annotate --local -f FILE <key>- -o json`
# reads the file through the same decoding path as `kubectl create -f`
# (resource builder → YAMLOrJSONDecoder → sigs.k8s.io/yaml → unstructured)
# but needs no API server for the REST mapping, so custom resources without
# their CRD work too. It adds an empty metadata.annotations map, which
# json_same ignores.
#
# Env: BUILD (default build), PLUMB_K8S_BIN (dir holding kubectl).
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-build}
[[ $build = /* ]] || build=$root/$build
kubectl=${PLUMB_K8S_BIN:-/root/.cache/plumb/k8s-v1.36.3-etcd-v3.6.8/bin}/kubectl
conv=$build/tools/manifest_json
same=$build/tools/json_same

for b in "$kubectl" "$conv" "$same"; do
	[[ -x $b ]] || { echo "test_kubectl_yaml: missing $b" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: none, context: {cluster: none}}]
current-context: none
KC

pass=0 fail=0
corpus=$root/tests/yaml-corpus
n=$(ls "$corpus"/*.yaml | wc -l)
if (( n < 60 )); then
	echo "test_kubectl_yaml: corpus has only $n files, want >= 60" >&2
	exit 1
fi

for f in "$corpus"/*.yaml; do
	name=$(basename "$f")
	if ! "$kubectl" --kubeconfig "$tmp/kubeconfig" annotate --local -f "$f" plumb-difftest- -o json \
			> "$tmp/k.json" 2> "$tmp/k.err"; then
		echo "FAIL $name: kubectl rejected it: $(head -c 300 "$tmp/k.err")"
		fail=$((fail + 1))
		continue
	fi
	if ! "$conv" "$f" > "$tmp/p.json" 2> "$tmp/p.err"; then
		echo "FAIL $name: plumb rejected it: $(head -c 300 "$tmp/p.err")"
		fail=$((fail + 1))
		continue
	fi
	if "$same" "$tmp/k.json" "$tmp/p.json" > "$tmp/diff" 2>&1; then
		pass=$((pass + 1))
	else
		echo "FAIL $name: plumb and kubectl disagree:"
		sed 's/^/    /' "$tmp/diff" | head -80
		fail=$((fail + 1))
	fi
done

for f in "$corpus"/invalid/*.yaml; do
	name=invalid/$(basename "$f")
	if "$kubectl" --kubeconfig "$tmp/kubeconfig" annotate --local -f "$f" plumb-difftest- -o json \
			> /dev/null 2>&1; then
		echo "FAIL $name: kubectl accepted a file meant to be invalid"
		fail=$((fail + 1))
		continue
	fi
	if "$conv" "$f" > /dev/null 2> "$tmp/p.err"; then
		echo "FAIL $name: plumb accepted what kubectl rejects"
		fail=$((fail + 1))
	elif ! grep -Eq "^$f:[0-9]+:[0-9]+: " "$tmp/p.err"; then
		echo "FAIL $name: plumb's error lacks file:line:col: $(head -c 300 "$tmp/p.err")"
		fail=$((fail + 1))
	else
		pass=$((pass + 1))
	fi
done

echo "test_kubectl_yaml: $pass passed, $fail failed"
(( fail == 0 ))
