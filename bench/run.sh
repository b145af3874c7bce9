#!/usr/bin/env bash
# plumb's end-to-end benchmark (issue 8): real local clusters (hack/cluster.sh),
# a real HTTPS Git server (hack/git-servers.sh), plumbd as a process, and the
# baselines (kubectl apply --server-side; the apiserver's write ceiling from
# tests/tools/bench_ceiling) measured side by side in the same run.
#
#   bash bench/run.sh            full suite (make bench), < 30 min on 2 cores without scenario 7 (Flux);
#                                writes bench/results.md and bench/*.png
#   bash bench/run.sh --quick    smaller sizes (make bench-quick), < 6.5 min;
#                                writes into --out (default /tmp/plumb-bench-quick)
#   bash bench/run.sh --smoke    the quick suite's smallest case only, and scenario 6
#                                at 100 objects to one target (make test runs it
#                                through e2e/test_bench_quick.sh)
#   options: --out DIR           where results.md, raw.tsv and the charts go
#   env: BUILD (build), PLUMB_K8S_BIN, PLUMB_TESTBED (smoke: reuse a running
#        test bed with c1 and c2; SCENARIOS=8: one with 1 + max(S8_COUNTS)
#        clusters; otherwise a fresh one is made and removed),
#        REPEATS, STEADY_SECONDS, THREADS to override the mode's defaults,
#        SCENARIOS (e.g. "6" or "1 2": only those; default all of the mode's;
#        7, Flux beside plumb, is in the full mode's default only; with 7,
#        scenarios 2, 3 and 4 also run Flux after plumb; 8, the cost per
#        cluster on 1 + 24 clusters, is in no mode's default:
#        SCENARIOS=8 runs it, ~25 min with its own test bed),
#        S8_COUNTS (scenario 8's target counts, default "0 1 6 12 24"),
#        S7_CASES (scenario 7's "N:T" cases, e.g. "1000:1 10000:3"),
#        FLUX_BIN (Flux's controllers; default hack/build-flux.sh's),
#        FLUX_ARGS, FLUX_KUSTOMIZE_ARGS (extra flags for both Flux controllers,
#        for kustomize-controller),
#        KUSTOMIZE (scenario 6's binary; default hack/build-kustomize.sh's),
#        KEEP_LOGS (non-empty: scenario 6 copies plumbd's logs into --out).
set -euo pipefail

# Everything runs inside main(), parsed in full before it starts, so that
# editing this file during a run cannot break the run.
main() {
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mode=full
out=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--quick) mode=quick; shift ;;
	--smoke) mode=smoke; shift ;;
	--out) out=$2; shift 2 ;;
	*) echo "bench/run.sh: unknown flag $1" >&2; exit 2 ;;
	esac
done

case $mode in
full)   # budget: 29 min; after the initial-sync cases: steady state + ~8 min
	sizes=(1000 10000) repeats=${REPEATS:-3} steady=${STEADY_SECONDS:-300}
	commits=50 edits=50 s5_counts=(1 3 6) s6_n=1000 s6_t=3 clusters=7 out=${out:-$ROOT/bench}
	s7_cases=${S7_CASES:-1000:1 1000:3 10000:1 10000:3} default_scenarios="1 2 3 4 5 6 7" flux_commits=20 flux_edits=15 s7_budget=2400
	budget=1740 after_s1=$((steady + 330 + 140)) ;;
quick)  # budget: 6 min 20 s
	sizes=(100 1000) repeats=${REPEATS:-2} steady=${STEADY_SECONDS:-20}
	commits=15 edits=15 s5_counts=(1 3 6) s6_n=1000 s6_t=3 clusters=7 out=${out:-/tmp/plumb-bench-quick}
	s7_cases=${S7_CASES:-100:1 1000:1} default_scenarios="1 2 3 4 5 6" flux_commits=10 flux_edits=8 s7_budget=900
	budget=380 after_s1=$((steady + 110 + 90)) ;;
smoke)
	sizes=(100) repeats=${REPEATS:-1} steady=0 commits=0 edits=0 s5_counts=() s6_n=100 s6_t=1 clusters=2
	out=${out:-$(mktemp -d /tmp/plumb-bench-smoke.XXXXXX)} budget=600 after_s1=0
	s7_cases=${S7_CASES:-100:1} default_scenarios="1 2 3 4 5 6" flux_commits=0 flux_edits=0 s7_budget=600 ;;
esac
scenarios=${SCENARIOS:-$default_scenarios}
want() { [[ " $scenarios " == *" $1 "* ]]; }
if ! want 5 && ((clusters > 4)); then clusters=4; fi   # only scenario 5 uses more than 3 targets
s8_counts=${S8_COUNTS:-0 1 6 12 24}
if want 8; then   # 1 + the largest count
	s8_max=$(printf '%s\n' $s8_counts | sort -n | tail -1)
	((s8_max + 1 > clusters)) && clusters=$((s8_max + 1))
fi

BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD="$ROOT/$BUILD"
for b in plumbd tools/bench_ceiling; do
	[[ -x $BUILD/$b ]] || { echo "bench/run.sh: $BUILD/$b missing (make BUILD=${BUILD#"$ROOT"/} -j2 all)" >&2; exit 1; }
done
PLUMB_K8S_BIN=${PLUMB_K8S_BIN:-$(bash "$ROOT/hack/build-k8s.sh")}
export PLUMB_K8S_BIN
if ((s6_n > 0)) && want 6; then
	KUSTOMIZE=${KUSTOMIZE:-$(bash "$ROOT/hack/build-kustomize.sh")/kustomize}
	[[ -x $KUSTOMIZE ]] || { echo "bench/run.sh: kustomize $KUSTOMIZE missing (bash hack/build-kustomize.sh)" >&2; exit 1; }
fi
if want 7; then
	FLUX_BIN=${FLUX_BIN:-$(bash "$ROOT/hack/build-flux.sh")}
	[[ -x $FLUX_BIN/source-controller && -x $FLUX_BIN/kustomize-controller ]] ||
		{ echo "bench/run.sh: Flux's controllers missing in $FLUX_BIN (bash hack/build-flux.sh)" >&2; exit 1; }
fi

WORK=$(mktemp -d /tmp/plumb-bench-work.XXXXXX)
RUN_ID=$(printf %04x%04x "$RANDOM" "$RANDOM")
HOOK_TOKEN=bench-$RANDOM$RANDOM$RANDOM
MGMT_NAMESPACES=()
own_testbed=0
mkdir -p "$out"
RAW=$out/raw.tsv
: >"$RAW"

# shellcheck source=bench/e2e/lib.sh
source "$ROOT/bench/e2e/lib.sh"
# shellcheck source=bench/e2e/scenarios.sh
source "$ROOT/bench/e2e/scenarios.sh"
# shellcheck source=bench/e2e/flux.sh
source "$ROOT/bench/e2e/flux.sh"
# shellcheck source=bench/e2e/scale.sh
source "$ROOT/bench/e2e/scale.sh"

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +eu
	bench_stop_all
	git_down
	if ((own_testbed)); then
		bash "$ROOT/hack/cluster.sh" down >/dev/null 2>&1 || true
	elif [[ -d ${PLUMB_TESTBED:-}/clusters/c1 ]]; then
		for ns in "${MGMT_NAMESPACES[@]}"; do kc c1 delete namespace "$ns" --wait=false >/dev/null 2>&1 || true; done
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$SECONDS
say "work dir $WORK"
if [[ $mode == smoke && -n ${PLUMB_TESTBED:-} && -d ${PLUMB_TESTBED}/clusters/c2 ]] ||
   [[ $scenarios == 8 && -n ${PLUMB_TESTBED:-} && -d ${PLUMB_TESTBED}/clusters/c$clusters ]]; then
	say "using the running test bed $PLUMB_TESTBED"
else
	export PLUMB_TESTBED
	PLUMB_TESTBED=$(mktemp -d /tmp/plumb-bench-tb.XXXXXX)
	rmdir "$PLUMB_TESTBED"
	own_testbed=1
	say "starting $clusters clusters in $PLUMB_TESTBED"
	tb0=$SECONDS
	bash "$ROOT/hack/cluster.sh" up "$clusters" 2>&1 | tail -1 >&2
	if want 8; then
		printf 'S8\ttestbed\tstart_s\t%s\n' "$((SECONDS - tb0))" >>"$RAW"
		printf 'S8\ttestbed\tclusters\t%s\n' "$clusters" >>"$RAW"
	fi
fi
git_up
crds_up
want 7 && flux_crds_up

k8s_version=$(api c1 GET /version | jq -r .gitVersion)
{
	printf 'meta\t-\tmode\t%s\n' "$mode"
	printf 'meta\t-\tdate\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
	printf 'meta\t-\tkubernetes\t%s\n' "$k8s_version"
	printf 'meta\t-\tcores\t%s\n' "$(nproc)"
	printf 'meta\t-\tcpu\t%s\n' "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	printf 'meta\t-\tplumbd\t%s\n' "$("$BUILD/plumbd" --version 2>&1 | head -1)"
	printf 'meta\t-\tcommit\t%s\n' "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	printf 'meta\t-\tload_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$RAW"

# Long initial-sync cases repeat only while the time budget allows (see s1).
S1_DEADLINE=$((start + budget - after_s1))
last=${sizes[-1]}
for n in "${sizes[@]}"; do
	want 1 || break
	reserve=0
	[[ $n == "$last" && $mode != smoke ]] && reserve=2   # room for the T=3 case of this size
	s1 "$n" 1 "$repeats" "" "$reserve"
	if [[ $mode != smoke ]]; then
		keep=""
		[[ $n == "$last" && $steady -gt 0 ]] && want 2 && keep=keep
		s1 "$n" 3 "$repeats" "$keep" 0
	fi
done
if [[ $steady -gt 0 ]] && want 1 && want 2; then
	s2 "$steady"
	want 7 && flux_s2 "$S2_N" 3 "$steady"
fi
if ((commits > 0)) && { want 3 || want 4; }; then
	s3_s4 "$commits" "$edits"
	want 7 && flux_s3_s4 "$flux_commits" "$flux_edits" 8
fi
((${#s5_counts[@]} > 0)) && want 5 && s5 "$repeats" "${s5_counts[@]}"
((s6_n > 0)) && want 6 && s6 "$s6_n" "$s6_t" "$repeats"
# shellcheck disable=SC2086
want 8 && s8 $s8_counts
if want 7; then
	S7_DEADLINE=$((SECONDS + s7_budget))
	for c in $s7_cases; do s7 "${c%:*}" "${c#*:}" "$repeats"; done
	printf 'meta\t-\tflux\t%s\n' "source-controller and kustomize-controller $(basename "$(dirname "$FLUX_BIN")" | sed 's/^flux-//')$(echo "${FLUX_ARGS:-} ${FLUX_KUSTOMIZE_ARGS:-}" | sed -E 's/^ +| +$//g; s/.+/ (&)/')" >>"$RAW"
fi

printf 'meta\t-\tload_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW"
printf 'meta\t-\twall_s\t%s\n' "$((SECONDS - start))" >>"$RAW"
printf 'meta\t-\tcommand\t%s%s%s\n' "${SCENARIOS:+SCENARIOS=\"$SCENARIOS\" }" "${S7_CASES:+S7_CASES=\"$S7_CASES\" }" "$(case $mode in full) echo "make bench" ;; quick) echo "make bench-quick" ;; smoke) echo "bash bench/run.sh --smoke" ;; esac)" >>"$RAW"
bash "$ROOT/bench/e2e/report.sh" "$RAW" "$out"
say "done in $((SECONDS - start)) s: $out/results.md"
}

main "$@"; exit   # one line: bash has read the exit before main runs, whatever is edited meanwhile
