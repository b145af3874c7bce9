#!/usr/bin/env bash
# A/B of the apply engine between two builds on one fresh local cluster:
# the initial apply of N ConfigMaps (tests/tools/apply_bench plumb), run
# interleaved A, B, A, B, … ROUNDS times each into namespaces of their own,
# with the apiserver's own ceiling measured in every round, so that load from
# other work on the machine hits both alike. Prints each run and the median
# seconds of each build with the ratio B/A.
#
#   bash bench/apply/ab.sh BUILD_A BUILD_B [N] [ROUNDS]   (default 1000 6)
#   e.g. git worktree add /tmp/base <commit> && make -C /tmp/base -j2 all
#        bash bench/apply/ab.sh /tmp/base/build build 1000 6
#   env: THREADS (8), PLUMB_TESTBED (/tmp/plumb-bench-ab)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
a=$1 b=$2 n=${3:-1000} rounds=${4:-6}
threads=${THREADS:-8}
export PLUMB_TESTBED=${PLUMB_TESTBED:-/tmp/plumb-bench-ab}
export PLUMB_K8S_BIN=${PLUMB_K8S_BIN:-$(bash "$root/hack/build-k8s.sh")}
for d in "$a" "$b"; do
	[[ -x $d/tools/apply_bench ]] || { echo "ab.sh: $d/tools/apply_bench missing" >&2; exit 1; }
done
trap 'bash "$root/hack/cluster.sh" down >/dev/null 2>&1 || true' EXIT
bash "$root/hack/cluster.sh" down >/dev/null 2>&1 || true
bash "$root/hack/cluster.sh" up 1 >/dev/null
sleep 5
kc=$PLUMB_TESTBED/clusters/c1/kubeconfig
secs() { sed -E 's/.* seconds=([0-9.]+).*/\1/'; }
ta=() tb=() tc=()
for r in $(seq 1 "$rounds"); do
	echo "# round $r load: $(cut -d' ' -f1-3 /proc/loadavg)"
	line=$("$a/tools/apply_bench" "$kc" ceiling "ab-c-$r" "$n" "$threads"); echo "ceiling $line"; tc+=("$(secs <<<"$line")")
	# alternate which build goes first
	for which in $( ((r % 2)) && echo "a b" || echo "b a"); do
		dir=$a; [[ $which == b ]] && dir=$b
		line=$("$dir/tools/apply_bench" "$kc" plumb "ab-$which-$r" "$n" "$threads" | grep '^mode=plumb')
		echo "$which $line"
		if [[ $which == a ]]; then ta+=("$(secs <<<"$line")"); else tb+=("$(secs <<<"$line")"); fi
	done
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ma=$(median "${ta[@]}") mb=$(median "${tb[@]}") mc=$(median "${tc[@]}")
echo "median seconds for $n objects: ceiling $mc, A ($a) $ma, B ($b) $mb"
awk -v a="$ma" -v b="$mb" -v c="$mc" 'BEGIN { printf "B/A = %.2f; A/ceiling = %.2f; B/ceiling = %.2f\n", b / a, a / c, b / c }'
