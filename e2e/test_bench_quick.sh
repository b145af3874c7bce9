#!/usr/bin/env bash
# Keeps `make bench` from rotting: runs the quick suite's smallest case
# (bench/run.sh --smoke: initial sync of 100 ConfigMaps to one target with
# both baselines, and scenario 6 with a Kustomize overlay of 100, on the
# running test bed) and checks that every measurement and the report came
# out. Not a timed test: no number is asserted beyond "measured and positive".
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/tests/lib.sh"
: "${PLUMB_TESTBED:?PLUMB_TESTBED must point at a running test bed}"

out=$(mktemp -d /tmp/plumb-bench-test.XXXXXX)
trap 'rm -rf "$out"' EXIT

bash "$root/bench/run.sh" --smoke --out "$out" >"$out/run.log" 2>&1
rc=$?
cat "$out/run.log"
t_eq "bench --smoke exits 0" 0 "$rc"
work=$(sed -n 's/^bench: work dir //p' "$out/run.log")
raw=$out/raw.tsv
val() { awk -F'\t' -v m="$1" '$1 == "S1" && $3 == m { print $4; exit }' "$raw"; }
for m in ceiling_s ceiling_objps kubectl_s kubectl_objps plumb_s plumb_objps plumb_rss_mb; do
	t_ok "measured $m ($(val $m))" awk -v v="$(val $m)" 'BEGIN { exit !(v + 0 > 0) }'
done
t_ok "plumb CPU measured ($(val plumb_cpu_s))" awk -v v="$(val plumb_cpu_s)" 'BEGIN { exit !(v != "" && v + 0 >= 0) }'
val6() { awk -F'\t' -v m="$1" '$1 == "S6" && $3 == m { print $4; exit }' "$raw"; }
for m in plain_s kustomize_s plain_commit_s kustomize_commit_s render_s commit_render_s render_rss_mb renders_initial; do
	t_ok "S6 measured $m ($(val6 $m))" awk -v v="$(val6 $m)" 'BEGIN { exit !(v + 0 > 0) }'
done
t_ok "results have the Kustomize table" grep -qE '^\| initial sync s .* \| [0-9.]+ \| [0-9.]+ \| [0-9.]+× \(goal' "$out/results.md"
t_ok "results table has the case" grep -qE '^\| N=100 T=1 \| 1 \| [0-9]+ \| [0-9]+ \| [0-9]+ \| [0-9]+% \| [0-9.]+× \|' "$out/results.md"
t_ok "results name the Kubernetes version" grep -q "Kubernetes v1\." "$out/results.md"
t_ok "throughput chart is a PNG" bash -c "file '$out/sync-throughput.png' | grep -q 'PNG image'"
t_ok "work dir known" test -n "$work"
t_eq "nothing of the run left running" "" "$(pgrep -f -- "$work" || true)"
t_ok "work dir removed" test ! -e "$work"
t_done
