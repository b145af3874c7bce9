# Scenario 8 of plumb's end-to-end benchmark: the cost of each target
# cluster. Sourced by bench/run.sh after bench/e2e/lib.sh; needs a test bed of
# 1 + max(COUNTS) clusters (run.sh starts 25 when scenario 8 runs).
#
# For each count T of targets a fresh plumbd gets T registered Clusters
# (c2…), waits until all are Ready (probed), settles, and is measured idle:
# VmRSS, VmHWM, CPU seconds over S8_IDLE seconds (per minute). Then one
# GitSync of 100 small ConfigMaps to all T: converge time (creation → all
# Synced), and after settling VmRSS, VmHWM and the CPU over S8_IDLE seconds
# again (its watches now run). T=0 is plumbd with no Cluster at all.
# The fit (least squares over T > 0) is the marginal cost per cluster; it is
# projected to 1,000 and 10,000 clusters.

S8_IDLE=${S8_IDLE:-60}      # seconds of idle CPU measured
S8_SETTLE=${S8_SETTLE:-15}  # seconds left to settle before RSS is read

# s8_testbed_cost: RSS (sum), CPU so far of every etcd and kube-apiserver of
# the test bed (each cluster's run script's pid files).
s8_testbed_cost() {
	local d p rss=0 cpu=0 n=0 kb
	for d in "$PLUMB_TESTBED"/clusters/c*; do
		for p in etcd apiserver; do
			[[ -s $d/$p.pid ]] || continue
			local pid
			pid=$(cat "$d/$p.pid")
			kill -0 "$pid" 2>/dev/null || continue
			kb=$(proc_rss "$pid")
			rss=$((rss + kb))
			cpu=$(awk -v a="$cpu" -v b="$(proc_cpu "$pid")" 'BEGIN { print a + b }')
			n=$((n + 1))
		done
	done
	echo "$n $rss $cpu"
}

# s8_ready NS COUNT: every one of COUNT Clusters in NS has Ready=True.
s8_ready() {
	api c1 GET "/apis/plumb.dev/v1alpha1/namespaces/$1/clusters" 2>/dev/null |
		json_check --argjson n "$2" \
			'[.items[] | select(any(.status.conditions[]?; .type == "Ready" and .status == "True"))] | length == $n' \
			>/dev/null 2>&1
}

# s8_cpu_per_min PID SECONDS: CPU seconds PID used in SECONDS, per minute.
s8_cpu_per_min() {
	local c0 c1
	c0=$(proc_cpu "$1")
	sleep "$2"
	c1=$(proc_cpu "$1")
	awk -v a="$c1" -v b="$c0" -v s="$2" 'BEGIN { printf "%.3f", (a - b) * 60 / s }'
}

# s8_fit METRIC: least-squares line of METRIC (KiB) over T > 0 of $RAW's S8
# rows; records slope (KiB per cluster), intercept and the projections.
s8_fit() {
	local m=$1 fit
	fit=$(awk -F'\t' -v m="$m" '$1 == "S8" && $3 == m { t = substr($2, 3) + 0; if (t > 0) { n++; sx += t; sy += $4; sxx += t * t; sxy += t * $4 } }
		END { if (n < 2) exit; b = (n * sxy - sx * sy) / (n * sxx - sx * sx); a = (sy - b * sx) / n
			printf "%.1f %.1f %.1f %.1f\n", b, a, (a + 1000 * b) / 1024, (a + 10000 * b) / 1048576 }' "$RAW")
	[[ -n $fit ]] || return 0
	read -r slope icpt p1k p10k <<<"$fit"
	record S8 fit "${m}_per_cluster_kib" "$slope"
	record S8 fit "${m}_intercept_kib" "$icpt"
	record S8 fit "${m}_at_1000_mib" "$p1k"
	record S8 fit "${m}_at_10000_gib" "$p10k"
	say "S8 fit $m: $slope KiB per cluster + $icpt KiB; 1,000 clusters: $p1k MiB, 10,000: $p10k GiB"
}

# s8 COUNTS…
s8() {
	local t ns commit t0 t1 cost c0
	read -r n rss cpu <<<"$(s8_testbed_cost)"
	record S8 testbed processes "$n"
	record S8 testbed rss_mib "$(fdiv "$rss" 1024)"
	record S8 testbed cpu_s_since_start "$cpu"
	c0=$cpu
	sleep 30
	read -r n rss cpu <<<"$(s8_testbed_cost)"
	record S8 testbed idle_cpu_s_per_min "$(awk -v a="$cpu" -v b="$c0" 'BEGIN { printf "%.2f", (a - b) * 2 }')"
	say "S8 test bed: $n processes, $(fdiv "$rss" 1024) MiB RSS, $(awk -v a="$cpu" -v b="$c0" 'BEGIN { printf "%.2f", (a - b) * 2 }') CPU s/min idle"

	[[ -d $WORK/clone-s8 ]] || new_repo s8 100
	REPO_URL="$HTTPS_BASIC_URL/s8.git"
	WT="$WORK/clone-s8"
	commit=$(git -C "$WT" rev-parse HEAD)
	for t in "$@"; do
		say "S8 $t targets"
		ns=s8-$t-$RUN_ID
		# shellcheck disable=SC2046
		mgmt_ns "$ns" $(targets_of "$t")
		# shellcheck disable=SC2046
		target_ns "$ns" $(targets_of "$t")
		start_plumbd "$ns"
		t0=$(now)
		local end=$((SECONDS + 120))
		until s8_ready "$ns" "$t"; do
			((SECONDS < end)) || { say "S8: $t Clusters not Ready after 120 s"; return 1; }
			sleep 0.25
		done
		record S8 "T=$t" ready_s "$(fsub "$(now)" "$t0")"
		sleep "$S8_SETTLE"
		record S8 "T=$t" idle_rss_kib "$(proc_rss "$PLUMBD_PID")"
		record S8 "T=$t" idle_hwm_kib "$(proc_hwm "$PLUMBD_PID")"
		record S8 "T=$t" idle_cpu_s_per_min "$(s8_cpu_per_min "$PLUMBD_PID" "$S8_IDLE")"
		if ((t > 0)); then
			t0=$(now)
			# shellcheck disable=SC2046
			gitsync "$ns" bench "$ns" $(targets_of "$t")
			# 100 objects a cluster, 4 workers: a loaded 2-core machine needs
			# up to ~5 s a cluster
			wait_synced "$ns" bench "$commit" "$t" $((120 + 10 * t)) || return 1
			t1=$(now)
			record S8 "T=$t" converge_s "$(fsub "$t1" "$t0")"
			sleep "$S8_SETTLE"
			record S8 "T=$t" synced_rss_kib "$(proc_rss "$PLUMBD_PID")"
			record S8 "T=$t" synced_hwm_kib "$(proc_hwm "$PLUMBD_PID")"
			record S8 "T=$t" synced_cpu_s_per_min "$(s8_cpu_per_min "$PLUMBD_PID" "$S8_IDLE")"
			record S8 "T=$t" status_bytes "$(api c1 GET "/apis/plumb.dev/v1alpha1/namespaces/$ns/gitsyncs/bench" | jq -c .status | wc -c)"
		fi
		say "S8 $t targets: $(awk -F'\t' -v c="T=$t" '$1 == "S8" && $2 == c { printf "%s=%s ", $3, $4 }' "$RAW")"
		stop_plumbd "$PLUMBD_PID"
		# shellcheck disable=SC2046
		((t > 0)) && purge_plumb "$ns" $(targets_of "$t") && purge_plumb plumb-system $(targets_of "$t")
	done
	s8_fit idle_rss_kib
	s8_fit synced_rss_kib
	s8_fit synced_hwm_kib
}
