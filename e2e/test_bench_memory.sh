#!/usr/bin/env bash
# Keeps bench/memory.sh from rotting: a small run (200 objects in each of two
# targets, on a test bed of its own) must go through every moment it
# measures and correct every out-of-band edit. Not a timed or sized test:
# the numbers are only required to be measured.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/tests/lib.sh"

out=$(mktemp -d /tmp/plumb-memory-test.XXXXXX)
trap 'rm -rf "$out"' EXIT

(unset PLUMB_TESTBED; N=200 T=2 SETTLE=3 OUT="$out/memory.md" bash "$root/bench/memory.sh") >"$out/run.log" 2>&1
rc=$?
cat "$out/run.log"
t_eq "bench/memory.sh exits 0" 0 "$rc"
cell() { awk -F'|' -v m="$1" '$2 ~ "^ " m " $" { gsub(/ /, "", $3); print $3; exit }' "$out/memory.md"; }
for m in idle sync_peak steady commit_peak commit_steady drift restart_peak restart_steady; do
	t_ok "measured $m ($(cell "$m") MiB)" awk -v v="$(cell "$m")" 'BEGIN { exit !(v + 0 > 0) }'
done
t_eq "every out-of-band edit corrected" 0 "$(cell uncorrected)"
t_ok "the peak is at least the steady size" awk -v p="$(cell sync_peak)" -v s="$(cell steady)" 'BEGIN { exit !(p + 0 >= s + 0) }'
t_ok "report names the command" grep -q 'bench/memory.sh' "$out/memory.md"
t_eq "no test bed of the run left running" "" "$(pgrep -f -- /tmp/plumb-memory-tb. || true)"
t_done
