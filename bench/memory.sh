#!/usr/bin/env bash
# plumbd's memory, measured (issue 6: "plumbd RSS idle and with 5,000 objects
# in each of two targets"; target: under 32 MB at 10,000 managed objects).
#
#   bash bench/memory.sh                 N=5000 objects into T=2 targets
#   make bench-memory                    the same
#   env: N, T, BUILD (build), BASELINE_BUILD (a second plumbd build, e.g. of
#        an older commit, measured in the same run on the same test bed for a
#        side-by-side ratio), OUT (results file, default /tmp/plumb-memory.md),
#        PLUMB_K8S_BIN, SETTLE (seconds left alone before "steady", 15),
#        MEM_PAUSE (seconds to wait at "steady", printing plumbd's pid, for a
#        look at /proc/PID/smaps or gdb), PLUMBD_LOG_LEVEL (debug logs the heap
#        after each reconcile)
#
# For each build, on a fresh management namespace and fresh target namespaces:
#   idle       plumbd started, its GitSync not created yet
#   sync       GitSync created → every target Synced (VmHWM = peak so far)
#   steady     SETTLE s later (VmRSS)
#   commit     a commit changing every object → Synced (peak, and RSS SETTLE s later)
#   drift      100 out-of-band edits in one target → corrected (RSS)
#   restart    plumbd stopped and started again over the synced targets:
#              peak until it reported the commit again, RSS SETTLE s later
# RSS is from /proc/PID/status (VmRSS; VmHWM for peaks), in MiB.
set -Eeuo pipefail

main() {
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-5000}
T=${T:-2}
SETTLE=${SETTLE:-15}
OUT=${OUT:-/tmp/plumb-memory.md}
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD="$ROOT/$BUILD"
builds=("$BUILD")
if [[ -n ${BASELINE_BUILD:-} ]]; then
	[[ $BASELINE_BUILD = /* ]] || BASELINE_BUILD="$ROOT/$BASELINE_BUILD"
	builds+=("$BASELINE_BUILD")
fi
for b in "${builds[@]}"; do
	[[ -x $b/plumbd ]] || { echo "bench/memory.sh: $b/plumbd missing" >&2; exit 1; }
done
PLUMB_K8S_BIN=${PLUMB_K8S_BIN:-$(bash "$ROOT/hack/build-k8s.sh")}
export PLUMB_K8S_BIN

WORK=$(mktemp -d /tmp/plumb-memory-work.XXXXXX)
RUN_ID=$(printf %04x "$RANDOM")
HOOK_TOKEN=mem-$RANDOM$RANDOM
MGMT_NAMESPACES=()
RAW=$WORK/raw.tsv
: >"$RAW"
# shellcheck source=bench/e2e/lib.sh
source "$ROOT/bench/e2e/lib.sh"

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +eu
	bench_stop_all
	git_down
	bash "$ROOT/hack/cluster.sh" down >/dev/null 2>&1 || true
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'say "failed at line $LINENO: $BASH_COMMAND"' ERR

export PLUMB_TESTBED
PLUMB_TESTBED=$(mktemp -d /tmp/plumb-memory-tb.XXXXXX)
rmdir "$PLUMB_TESTBED"
say "starting $((T + 1)) clusters"
bash "$ROOT/hack/cluster.sh" up $((T + 1)) 2>&1 | tail -1 >&2
git_up
crds_up
new_repo mem "$N"
commit0=$(git -C "$WT" rev-parse HEAD)
# shellcheck disable=SC2046
set -- $(for ((i = 2; i < T + 2; i++)); do printf 'c%d ' "$i"; done)

mib() { fdiv "$1" 1024; }
declare -A R
for b in "${builds[@]}"; do
	local tag ns pid c k commit1
	tag=$(basename "$b")
	ns=mem-$tag-$RUN_ID
	BUILD=$b
	say "$tag: $N objects × $T targets"
	mgmt_ns "$ns" "$@"
	target_ns "$ns" "$@"
	git -C "$WT" reset -q --hard "$commit0"
	git -C "$WT" push -q -f origin main 2>/dev/null
	start_plumbd "$ns"
	pid=$PLUMBD_PID
	sleep 3
	R[$tag,idle]=$(mib "$(proc_rss "$pid")")
	gitsync "$ns" bench "$ns" "$@"
	wait_synced "$ns" bench "$commit0" "$T" $((120 + N * T / 10)) || return 1
	R[$tag,sync_peak]=$(mib "$(proc_hwm "$pid")")
	sleep "$SETTLE"
	R[$tag,steady]=$(mib "$(proc_rss "$pid")")
	if [[ -n ${MEM_PAUSE:-} ]]; then   # for a look with gdb or /proc/PID/smaps
		say "$tag: steady, plumbd pid $pid; pausing ${MEM_PAUSE} s"
		sleep "$MEM_PAUSE"
	fi

	sed -i "s/^  rev: init-/  rev: next-/" "$WT"/cm/*.yaml
	commit1=$(git_commit "change every object")
	curl -sf -o /dev/null -X POST "http://127.0.0.1:$METRICS_PORT/hooks/$ns/bench" -H "X-Gitlab-Token: $HOOK_TOKEN" -d '{}'
	wait_synced "$ns" bench "$commit1" "$T" $((120 + N * T / 10)) || return 1
	R[$tag,commit_peak]=$(mib "$(proc_hwm "$pid")")
	sleep "$SETTLE"
	R[$tag,commit_steady]=$(mib "$(proc_rss "$pid")")

	for ((k = 0; k < 100; k++)); do
		printf '{"data":{"rev":"edited-%d"}}\n' "$k" >"$WORK/patch.json"
		api c2 PATCH "/api/v1/namespaces/$ns/configmaps/$(printf 'cm-%05d' $((k * 37 % N)))?fieldManager=mem-editor" \
			-H 'Content-Type: application/merge-patch+json' --data-binary @"$WORK/patch.json" -o /dev/null
	done
	sleep "$SETTLE"
	k=$(api c2 GET "/api/v1/namespaces/$ns/configmaps?labelSelector=app%3Dbench" |
		jq '[.items[] | select(.data.rev | startswith("edited-"))] | length')
	[[ $k == 0 ]] || say "$tag: $k of 100 edits not corrected after $SETTLE s"
	R[$tag,uncorrected]=$k
	R[$tag,drift]=$(mib "$(proc_rss "$pid")")

	stop_plumbd "$pid"
	start_plumbd "$ns"
	pid=$PLUMBD_PID
	# the status says Synced at commit1 already: wait for the reconcile the
	# restart does (plumb_reconcile_total counts it)
	local end=$((SECONDS + 120 + N * T / 10)) done=0
	while ((SECONDS < end)); do
		done=$(curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" |
			awk '/^plumb_reconcile_total\{/ && /result="success"/ { s += $2 } END { print s + 0 }')
		((done >= T)) && break
		sleep 0.25
	done
	((done >= T)) || { say "$tag: no reconcile after the restart"; return 1; }
	R[$tag,restart_peak]=$(mib "$(proc_hwm "$pid")")
	sleep "$SETTLE"
	R[$tag,restart_steady]=$(mib "$(proc_rss "$pid")")
	stop_plumbd "$pid"
	purge_plumb "$ns" "$@"   # the next build starts with targets holding nothing of plumb's
	say "$tag: idle ${R[$tag,idle]}, sync peak ${R[$tag,sync_peak]}, steady ${R[$tag,steady]}," \
		"commit peak ${R[$tag,commit_peak]}, steady ${R[$tag,commit_steady]}, after drift ${R[$tag,drift]}," \
		"restart peak ${R[$tag,restart_peak]}, steady ${R[$tag,restart_steady]} MiB"
done

{
	echo "# plumbd memory: $N objects in each of $T targets ($((N * T)) managed objects)"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)." \
		"Command: \`N=$N T=$T${BASELINE_BUILD:+ BASELINE_BUILD=$(basename "$BASELINE_BUILD")} bash bench/memory.sh\`. MiB from /proc/PID/status."
	echo
	printf '| moment |'
	for b in "${builds[@]}"; do printf ' %s |' "$(basename "$b")"; done
	((${#builds[@]} == 2)) && printf ' ratio |'
	echo
	printf '|---|'
	for b in "${builds[@]}"; do printf -- '---|'; done
	((${#builds[@]} == 2)) && printf -- '---|'
	echo
	for m in idle sync_peak steady commit_peak commit_steady drift restart_peak restart_steady uncorrected; do
		printf '| %s |' "$m"
		for b in "${builds[@]}"; do printf ' %s |' "${R[$(basename "$b"),$m]}"; done
		if ((${#builds[@]} == 2)); then
			printf ' %s |' "$(awk -v a="${R[$(basename "${builds[0]}"),$m]}" -v b="${R[$(basename "${builds[1]}"),$m]}" \
				'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
		fi
		echo
	done
} >"$OUT"
cat "$OUT"
}

main "$@"
