# The scenarios of plumb's end-to-end benchmark (issue 8). Sourced by
# bench/run.sh after bench/e2e/lib.sh. Each appends its measurements to $RAW.
#
# Target namespaces are per run and per mode (nothing is deleted between runs:
# the test bed has no namespace controller, and deleting 10,000s of objects
# would cost more than the measurement); every mode sees the same growth.

THREADS=${THREADS:-8}   # bench_ceiling threads per cluster (plumb's apply engine uses 8)

targets_of() { # T: the first T target clusters (c2…)
	local i
	for ((i = 2; i < $1 + 2; i++)); do printf 'c%d ' "$i"; done
}

# ceiling_run NS FILE CLUSTER…: bench_ceiling against all clusters at once;
# prints the wall time.
ceiling_run() {
	local ns=$1 file=$2 c t0 t1 pids=() rc=0
	shift 2
	target_ns "$ns" "$@"
	t0=$(now)
	for c in "$@"; do
		"$BUILD/tools/bench_ceiling" "$(cdir "$c")/kubeconfig" "$ns" "$THREADS" "$file" >"$WORK/ceiling-$ns-$c.out" &
		pids+=("$!")
	done
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	t1=$(now)
	((rc == 0)) || { say "bench_ceiling failed: $(cat "$WORK"/ceiling-"$ns"-*.out)"; return 1; }
	fsub "$t1" "$t0"
}

# kubectl_run NS DIR CLUSTER…: `kubectl apply --server-side -f DIR` into each
# cluster, all at once (a CI job per cluster); prints the wall time.
kubectl_run() {
	local ns=$1 dir=$2 c t0 t1 pids=() rc=0
	shift 2
	target_ns "$ns" "$@"
	t0=$(now)
	for c in "$@"; do
		kc "$c" -n "$ns" apply --server-side -f "$dir" >"$WORK/kubectl-$ns-$c.out" 2>&1 &
		pids+=("$!")
	done
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	t1=$(now)
	((rc == 0)) || { say "kubectl failed: $(tail -3 "$WORK"/kubectl-"$ns"-*.out)"; return 1; }
	fsub "$t1" "$t0"
}

# plumb_run NS COMMIT N TIMEOUT CLUSTER…: a fresh plumbd, then one GitSync
# targeting the clusters; measures GitSync creation → every cluster Synced at
# COMMIT (status polled every 0.25 s). Sets RUN_S, RUN_CPU, RUN_HWM_KB and
# leaves plumbd running (PLUMBD_PID).
plumb_run() {
	local ns=$1 commit=$2 n=$3 timeout=$4 t0 t1 c0
	shift 4
	mgmt_ns "$ns" "$@"
	target_ns "$ns" "$@"
	start_plumbd "$ns"
	c0=$(proc_cpu "$PLUMBD_PID")
	t0=$(now)
	gitsync "$ns" bench "$ns" "$@"
	wait_synced "$ns" bench "$commit" "$#" "$timeout" || return 1
	t1=$(now)
	RUN_S=$(fsub "$t1" "$t0")
	RUN_CPU=$(fsub "$(proc_cpu "$PLUMBD_PID")" "$c0")
	RUN_HWM_KB=$(proc_hwm "$PLUMBD_PID")
}

# s1_repo N T: the initial-sync repository of N ConfigMaps, s1-N (made on
# first use, shared by every initial-sync case of that size); sets REPO_URL,
# WT, S1_COMMIT (its head) and S1_TIMEOUT (seconds allowed to sync it to T
# clusters).
s1_repo() {
	[[ -d $WORK/clone-s1-$1 ]] || new_repo "s1-$1" "$1"
	REPO_URL="$HTTPS_BASIC_URL/s1-$1.git"
	WT="$WORK/clone-s1-$1"
	S1_COMMIT=$(git -C "$WT" rev-parse HEAD)
	S1_TIMEOUT=$((120 + $1 * ${2:-1} / 10))
}

# s1 N T REPEATS [KEEP [RESERVE]]: initial sync of N ConfigMaps to T clusters;
# ceiling, kubectl and plumb back to back in each repeat. A repeat after the
# first that took 90 s or more only starts when it should end before
# S1_DEADLINE minus RESERVE times the first repeat's duration (time kept for
# the cases still to come); the report shows how many repeats ran. With KEEP
# (non-empty), plumbd of the last repeat keeps running for the steady-state
# scenario (S2_PID, S2_NS, S2_CLUSTERS, S2_N, S2_COMMIT).
s1() {
	local n=$1 t=$2 reps=$3 keep=${4:-} reserve=${5:-0} r ns s commit case timeout
	local prev_pid="" prev_ns="" d_prev=0 d_first=0 rstart
	# shellcheck disable=SC2046
	set -- $(targets_of "$t")
	s1_repo "$n" "$t"
	case="N=$n T=$t" commit=$S1_COMMIT timeout=$S1_TIMEOUT
	for ((r = 1; r <= reps; r++)); do
		if ((r > 1 && d_prev >= 90 && SECONDS + d_prev > S1_DEADLINE - reserve * d_first)); then
			say "S1 $case: time budget spent, $((r - 1)) repeat(s)"
			break
		fi
		rstart=$SECONDS
		if [[ -n $prev_pid ]]; then
			stop_plumbd "$prev_pid"
			purge_plumb "$prev_ns" "$@"
			prev_pid=""
		fi
		say "S1 initial sync $case repeat $r/$reps (load $(cut -d' ' -f1 /proc/loadavg))"
		ns=s1-ceil-$n-$t-$r-$RUN_ID
		s=$(ceiling_run "$ns" "$WORK/s1-$n.jsonl" "$@") || return 1
		record S1 "$case" ceiling_s "$s"
		record S1 "$case" ceiling_objps "$(fdiv $((n * t)) "$s")"
		local sc=$s
		ns=s1-kctl-$n-$t-$r-$RUN_ID
		s=$(kubectl_run "$ns" "$WT/cm" "$@") || return 1
		record S1 "$case" kubectl_s "$s"
		record S1 "$case" kubectl_objps "$(fdiv $((n * t)) "$s")"
		ns=s1-plumb-$n-$t-$r-$RUN_ID
		plumb_run "$ns" "$commit" "$n" "$timeout" "$@" || return 1
		record S1 "$case" plumb_s "$RUN_S"
		record S1 "$case" plumb_objps "$(fdiv $((n * t)) "$RUN_S")"
		record S1 "$case" plumb_cpu_s "$RUN_CPU"
		record S1 "$case" plumb_rss_mb "$(fdiv "$RUN_HWM_KB" 1024)"
		say "  ceiling $(fdiv $((n * t)) "$sc") obj/s, kubectl $(fdiv $((n * t)) "$s") obj/s," \
			"plumb $(fdiv $((n * t)) "$RUN_S") obj/s (${RUN_S} s, cpu ${RUN_CPU} s, peak RSS $(fdiv "$RUN_HWM_KB" 1024) MiB)"
		if [[ -n $keep ]]; then
			prev_pid=$PLUMBD_PID prev_ns=$ns
		else
			stop_plumbd "$PLUMBD_PID"
			purge_plumb "$ns" "$@"
		fi
		d_prev=$((SECONDS - rstart))
		((r == 1)) && d_first=$d_prev
	done
	if [[ -n $keep ]]; then
		S2_PID=$prev_pid S2_NS=$prev_ns S2_CLUSTERS="c1 $*" S2_N=$n S2_COMMIT=$commit
	fi
}

# audit_mark CLUSTER…: marks where each cluster's audit log ends now
# (AUDIT_OFF) and the time (AUDIT_SINCE), for audit_since.
audit_mark() {
	local c
	declare -gA AUDIT_OFF=()
	for c in "$@"; do AUDIT_OFF[$c]=$(stat -c %s "$(cdir "$c")/audit.log"); done
	AUDIT_SINCE=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
}

# audit_since AGENT-REGEX CLUSTER…: the audit events since audit_mark of the
# clients whose user agent matches AGENT-REGEX, one "VERB DRY AGENT" a line:
# DRY 1 for a dry run (dryRun= in the request), AGENT the user agent's name
# (up to its first "/").
audit_since() {
	local re=$1 c
	shift
	for c in "$@"; do
		tail -c +"$((AUDIT_OFF[$c] + 1))" "$(cdir "$c")/audit.log" |
			jq -r --arg since "$AUDIT_SINCE" --arg re "$re" 'select(.userAgent != null and (.userAgent | test($re)))
				| select(.stageTimestamp >= $since)
				| "\(.verb) \(if (.requestURI | test("[?&]dryRun=")) then 1 else 0 end) \(.userAgent | split("/")[0])"'
	done
}

# record_requests CASE PREFIX SECONDS FILE: S2's request figures from
# audit_since's FILE over SECONDS: PREFIXrequests_per_min_VERB,
# PREFIXagent_requests_per_min_AGENT, PREFIXwrites (create, update, patch,
# delete that are not dry runs), PREFIXdryruns. Sets REQ_WRITES, REQ_DRYRUNS
# and REQ_VERBS ("COUNT VERB …").
record_requests() {
	local case=$1 pre=$2 dur=$3 file=$4 count key
	while read -r count key; do
		record S2 "$case" "${pre}$key" "$(awk -v c="$count" -v d="$dur" 'BEGIN { printf "%.1f", c * 60 / d }')"
	done < <({ awk '{ print "requests_per_min_" $1; print "agent_requests_per_min_" $3 }' "$file"; } | sort | uniq -c)
	REQ_WRITES=$(awk '$1 ~ /^(create|update|patch|delete|deletecollection)$/ && $2 == 0 { s++ } END { print s + 0 }' "$file")
	REQ_DRYRUNS=$(awk '$2 == 1 { s++ } END { print s + 0 }' "$file")
	REQ_VERBS=$(awk '{ print $1 }' "$file" | sort | uniq -c | awk '{ printf "%s%s %s", (NR > 1) ? ", " : "", $1, $2 }')
	record S2 "$case" "${pre}writes" "$REQ_WRITES"
	record S2 "$case" "${pre}dryruns" "$REQ_DRYRUNS"
}

# s2 SECONDS: steady state of the plumbd kept by s1: API requests by verb
# (audit logs of the management cluster and the targets, user agent plumb/…),
# writes, CPU and RSS.
s2() {
	local dur=$1 cpu0 cpu1 case="N=$S2_N T=$(($(wc -w <<<"$S2_CLUSTERS") - 1))"
	say "S2 steady state $case for $dur s"
	sleep 5   # let the watch-triggered no-op reconciles after the initial sync settle
	# shellcheck disable=SC2086
	audit_mark $S2_CLUSTERS
	cpu0=$(proc_cpu "$S2_PID")
	sleep "$dur"
	cpu1=$(proc_cpu "$S2_PID")
	kill -0 "$S2_PID" || { say "plumbd died during the steady state"; return 1; }
	synced "$S2_NS" bench "$S2_COMMIT" $(($(wc -w <<<"$S2_CLUSTERS") - 1)) || { say "not Synced after the steady state"; return 1; }
	# shellcheck disable=SC2086
	audit_since '^plumb/' $S2_CLUSTERS >"$WORK/s2-audit.txt"
	record S2 "$case" seconds "$dur"
	record_requests "$case" "" "$dur" "$WORK/s2-audit.txt"
	record S2 "$case" cpu_s "$(fsub "$cpu1" "$cpu0")"
	record S2 "$case" cpu_pct_of_core "$(awk -v a="$cpu0" -v b="$cpu1" -v d="$dur" 'BEGIN { printf "%.2f", (b - a) * 100 / d }')"
	record S2 "$case" rss_mb "$(fdiv "$(proc_rss "$S2_PID")" 1024)"
	record S2 "$case" peak_rss_mb "$(fdiv "$(proc_hwm "$S2_PID")" 1024)"
	say "  requests by verb: $REQ_VERBS; writes $REQ_WRITES, dry runs $REQ_DRYRUNS; cpu $(fsub "$cpu1" "$cpu0") s"
	stop_plumbd "$S2_PID"
	# shellcheck disable=SC2086
	purge_plumb "$S2_NS" ${S2_CLUSTERS#c1 }
}

# hook_post NS: plumbd's webhook for GitSync NS/bench.
hook_post() {
	curl -sf -o /dev/null -X POST "http://127.0.0.1:$METRICS_PORT/hooks/$1/bench" -H "X-Gitlab-Token: $HOOK_TOKEN" -d '{}' ||
		{ say "webhook refused"; return 1; }
}

# commit_applied K WATCH TIMEOUT TRIGGER…: the K-th commit of S3 to $WT,
# changing one ConfigMap (cm-IDX's rev), pushed, then TRIGGER… run at once;
# waits until the new value is seen on the watches WATCH-c2, -c3 and -c4.
# Sets COMMIT_LAT (trigger → seen in all three), COMMIT_IDX, COMMIT_REV.
commit_applied() {
	local k=$1 watch=$2 timeout=$3 idx m t0 end c t maxt
	shift 3
	idx=$(((k * 37) % 100))
	m=commit-$k-$RANDOM
	sed -i "s/^  rev: .*/  rev: $m/" "$WT/cm/$(printf 'cm-%05d' "$idx").yaml"
	git_commit "change cm-$idx" >/dev/null
	t0=$(now)
	"$@" || return 1
	end=$((SECONDS + timeout))
	while ((SECONDS < end)); do
		maxt=0
		for c in c2 c3 c4; do
			t=$(first_after "$watch-$c" 0 "\"rev\":\"$m\"" | cut -d' ' -f2)
			[[ -n $t ]] || { maxt=""; break; }
			maxt=$(awk -v a="$maxt" -v b="$t" 'BEGIN { print (b > a) ? b : a }')
		done
		if [[ -n $maxt ]]; then
			COMMIT_LAT=$(fsub "$maxt" "$t0") COMMIT_IDX=$idx COMMIT_REV=$m
			return 0
		fi
		sleep 0.02
	done
	say "commit $k not applied in $timeout s"
	return 1
}

# s3_s4 COMMITS EDITS: 100 objects in 3 targets. S3: COMMITS commits each
# changing one ConfigMap, each followed by a webhook; latency from the webhook
# until the new value is in all three targets (seen on watches). S4: EDITS
# out-of-band edits (merge patch by another field manager), rotating over the
# targets; latency from the edit's watch event to the correction's.
s3_s4() {
	local commits=$1 edits=$2 ns=s3-$RUN_ID k idx c m lat line ta tb end
	local -a tg=(c2 c3 c4) desired
	new_repo lat 100
	for ((idx = 0; idx < 100; idx++)); do desired[idx]=init-$idx; done
	plumb_run "$ns" "$(git -C "$WT" rev-parse HEAD)" 100 120 "${tg[@]}" || return 1
	for c in "${tg[@]}"; do watch_start "$c" "$ns" "$WORK/watch-$c"; done
	sleep 2   # the watches are open and the after-sync reconciles are done
	say "S3 commit → applied: $commits commits, webhook-triggered, 3 targets"
	for ((k = 1; k <= commits; k++)); do
		commit_applied "$k" "$WORK/watch" 30 hook_post "$ns" || return 1
		lat=$COMMIT_LAT
		desired[COMMIT_IDX]=$COMMIT_REV
		record S3 "100 objects, 3 targets" latency_s "$lat"
		# keep triggers more than spec.debounce (1 s) apart: a quiet item runs at once
		sleep "$(awk -v l="$lat" 'BEGIN { d = 1.3 - l; print (d > 0) ? d : 0 }')"
	done
	say "S4 drift correction: $edits out-of-band edits"
	local before
	before=$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk '/^plumb_drift_corrections_total/ { s += $NF } END { print s + 0 }')
	for ((k = 1; k <= edits; k++)); do
		c=${tg[k % 3]}
		idx=$(((k * 53 + 7) % 100))
		m=drift-$k-$RANDOM
		line=$(wc -l <"$WORK/watch-$c")
		api "$c" PATCH "/api/v1/namespaces/$ns/configmaps/$(printf 'cm-%05d' "$idx")?fieldManager=bench-editor" \
			-H 'Content-Type: application/merge-patch+json' -d "{\"data\":{\"rev\":\"$m\"}}" -o /dev/null || return 1
		end=$((SECONDS + 30))
		lat=""
		while ((SECONDS < end)); do
			read -r ta_line ta < <(first_after "$WORK/watch-$c" "$line" "\"rev\":\"$m\"") || true
			if [[ -n ${ta:-} ]]; then
				read -r _ tb < <(first_after "$WORK/watch-$c" "$ta_line" "\"rev\":\"${desired[idx]}\"") || true
				if [[ -n ${tb:-} ]]; then lat=$(fsub "$tb" "$ta"); break; fi
			fi
			sleep 0.02
		done
		unset ta tb ta_line
		[[ -n $lat ]] || { say "edit $k not corrected in 30 s"; return 1; }
		record S4 "100 objects, 3 targets" latency_s "$lat"
		sleep "$(awk -v l="$lat" 'BEGIN { d = 1.3 - l; print (d > 0) ? d : 0 }')"
	done
	sleep 1
	record S4 "100 objects, 3 targets" corrections_counted "$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" |
		awk -v b="$before" '/^plumb_drift_corrections_total/ { s += $NF } END { print s - b }')"
	record S3 "100 objects, 3 targets" peak_rss_mb "$(fdiv "$(proc_hwm "$PLUMBD_PID")" 1024)"
	stop_plumbd "$PLUMBD_PID"
	purge_plumb "$ns" "${tg[@]}"
}

# s5 REPEATS COUNTS…: one GitSync of 100 objects to each count of clusters;
# plumb (fresh plumbd) vs kubectl into every cluster at once.
s5() {
	local reps=$1 r t ns s commit
	shift
	[[ -d $WORK/clone-lat ]] || new_repo lat 100   # made by s3_s4 unless it did not run
	REPO_URL="$HTTPS_BASIC_URL/lat.git"
	WT="$WORK/clone-lat"
	commit=$(git -C "$WT" rev-parse HEAD)
	for ((r = 1; r <= reps; r++)); do
		for t in "$@"; do
			say "S5 100 objects to $t clusters, repeat $r/$reps"
			# shellcheck disable=SC2046
			s=$(kubectl_run "s5-kctl-$t-$r-$RUN_ID" "$WT/cm" $(targets_of "$t")) || return 1
			record S5 "T=$t" kubectl_s "$s"
			ns=s5-plumb-$t-$r-$RUN_ID
			# shellcheck disable=SC2046
			plumb_run "$ns" "$commit" 100 120 $(targets_of "$t") || return 1
			stop_plumbd "$PLUMBD_PID"
			# shellcheck disable=SC2046
			purge_plumb "$ns" $(targets_of "$t")
			record S5 "T=$t" plumb_s "$RUN_S"
			record S5 "T=$t" plumb_cpu_s "$RUN_CPU"
			record S5 "T=$t" plumb_rss_mb "$(fdiv "$RUN_HWM_KB" 1024)"
		done
	done
}

# s6_repo N: repo s6-N with a Kustomize overlay of N ConfigMaps and the same
# final objects as plain YAML. base/: N ConfigMaps of ~1 KiB (as the other
# scenarios') and a kustomization listing them; overlay/: base plus a label
# on every object (labels:, without selectors) and a JSON 6902 patch adding
# a data key to one ConfigMap (an overlay's usual shape: a patch names its
# objects; one whose target is a whole kind costs kustomize several times
# as much, see bench/README.md); plain/: `kustomize build overlay`, one file
# an object, committed in the same commit.
s6_repo() {
	local n=$1 k
	repo_init "s6-$n"
	gen_cms "$WT/base" "$n"
	{
		echo "apiVersion: kustomize.config.k8s.io/v1beta1"
		echo "kind: Kustomization"
		echo "resources:"
		for ((k = 0; k < n; k++)); do printf -- '- cm-%05d.yaml\n' "$k"; done
	} >"$WT/base/kustomization.yaml"
	mkdir -p "$WT/overlay" "$WT/plain"
	cat >"$WT/overlay/kustomization.yaml" <<-'YAML'
		apiVersion: kustomize.config.k8s.io/v1beta1
		kind: Kustomization
		resources: [../base]
		labels:
		- pairs: {env: bench-overlay}
		  includeSelectors: false
		patches:
		- target: {kind: ConfigMap, name: cm-00007}
		  patch: |-
		    - op: add
		      path: /data/overlay
		      value: "on"
	YAML
	"$KUSTOMIZE" build "$WT/overlay" | awk -v dir="$WT/plain" '
		function flush() { if (name != "") { printf "%s", doc > (dir "/" name ".yaml"); close(dir "/" name ".yaml") } doc = ""; name = "" }
		$0 == "---" { flush(); next }
		/^  name: / && name == "" { name = $2 }
		{ doc = doc $0 "\n" }
		END { flush() }'
	[[ $(find "$WT/plain" -name '*.yaml' | wc -l) == "$n" ]] || { say "S6: kustomize build did not give $n objects"; return 1; }
	git_commit "$n ConfigMaps: a Kustomize overlay and the same objects as plain YAML" >/dev/null
}

# renders_of COMMIT LOG: "seconds peak_rss_kb" of each of plumbd's "rendered"
# log lines for COMMIT.
renders_of() {
	jq -Rr --arg c "$1" 'fromjson? | select(.msg == "rendered" and .commit == $c and .cached != "true") | "\(.seconds) \(.peak_rss_kb)"' "$2"
}

# record_renders CASE COMMIT METRIC COUNT: the renders of COMMIT in
# plumbd's log so far: METRIC (seconds) and render_rss_mb for each, COUNT
# their number (also in RENDERS).
record_renders() {
	local secs rss cnt=0
	while read -r secs rss; do
		record S6 "$1" "$3" "$secs"
		record S6 "$1" render_rss_mb "$(fdiv "$rss" 1024)"
		cnt=$((cnt + 1))
	done < <(renders_of "$2" "$PLUMBD_LOG")
	record S6 "$1" "$4" "$cnt"
	RENDERS=$cnt
}

# s6 N T REPEATS: Kustomize vs plain YAML, the same N final objects to T
# clusters. In each repeat, for each of plain/ and overlay/ (the order
# alternates between repeats): a fresh plumbd, GitSync created → every
# cluster Synced (as in S1); then one commit changing one object (in base/
# and plain/ alike), webhook → every cluster Synced at it. Records plumbd's
# wall time, CPU and peak RSS for both, the ratio per repeat (report.sh), and
# for the overlay each render plumbd logged ("rendered": the kustomize
# child's wall time and peak RSS, which plumbd's own RSS does not include),
# plus `kustomize build overlay` on the checkout as the bare tool's figure.
s6() {
	local n=$1 t=$2 reps=$3 r kind path ns commit new m idx timeout case t0 secs rss
	case="N=$n T=$t"
	# shellcheck disable=SC2046
	set -- $(targets_of "$t")
	[[ -d $WORK/clone-s6-$n ]] || s6_repo "$n" || return 1
	REPO_URL="$HTTPS_BASIC_URL/s6-$n.git"
	WT="$WORK/clone-s6-$n"
	timeout=$((120 + n * t / 10))
	for ((r = 1; r <= reps; r++)); do
		local order=(plain kustomize)
		((r % 2 == 0)) && order=(kustomize plain)
		/usr/bin/time -f '%e %M' -o "$WORK/s6-cli" "$KUSTOMIZE" build "$WT/overlay" >/dev/null 2>&1 ||
			{ say "S6: kustomize build failed"; return 1; }
		read -r secs rss <"$WORK/s6-cli"
		record S6 "$case" cli_render_s "$secs"
		record S6 "$case" cli_render_rss_mb "$(fdiv "$rss" 1024)"
		for kind in "${order[@]}"; do
			[[ $kind == plain ]] && path=plain || path=overlay
			commit=$(git -C "$WT" rev-parse HEAD)
			ns=s6-$kind-$n-$t-$r-$RUN_ID
			say "S6 $case $kind repeat $r/$reps (load $(cut -d' ' -f1 /proc/loadavg))"
			GS_PATH=$path plumb_run "$ns" "$commit" "$n" "$timeout" "$@" || return 1
			record S6 "$case" "${kind}_s" "$RUN_S"
			record S6 "$case" "${kind}_cpu_s" "$RUN_CPU"
			record S6 "$case" "${kind}_rss_mb" "$(fdiv "$RUN_HWM_KB" 1024)"
			local line="  $kind: ${RUN_S} s, cpu ${RUN_CPU} s, plumbd peak RSS $(fdiv "$RUN_HWM_KB" 1024) MiB"
			if [[ $kind == kustomize ]]; then
				record_renders "$case" "$commit" render_s renders_initial
				line+="; $RENDERS kustomize run(s), $(renders_of "$commit" "$PLUMBD_LOG" | awk '{ printf "%s%.2f s/%.0f MiB", (NR > 1) ? ", " : "", $1, $2 / 1024 }')"
			fi
			say "$line"
			# one commit changing one object, past the debounce of the initial sync's triggers
			sleep 1.5
			idx=$(((r * 37 + ${#kind}) % n))
			m=s6-$r-$kind-$RANDOM
			sed -i "s/^  rev: .*/  rev: $m/" "$WT/base/$(printf 'cm-%05d' "$idx").yaml" "$WT/plain/$(printf 'cm-%05d' "$idx").yaml"
			new=$(git_commit "change cm-$idx")
			t0=$(now)
			curl -sf -o /dev/null -X POST "http://127.0.0.1:$METRICS_PORT/hooks/$ns/bench" -H "X-Gitlab-Token: $HOOK_TOKEN" -d '{}' ||
				{ say "webhook refused"; return 1; }
			wait_synced "$ns" bench "$new" "$#" 60 || return 1
			record S6 "$case" "${kind}_commit_s" "$(fsub "$(now)" "$t0")"
			if [[ $kind == kustomize ]]; then
				record_renders "$case" "$new" commit_render_s renders_commit
				# every render of the initial commit: the sync's, and those of the
				# reconciles its own writes triggered through the watches
				record S6 "$case" renders_initial_total "$(renders_of "$commit" "$PLUMBD_LOG" | wc -l)"
			fi
			record S6 "$case" "${kind}_reconciles" "$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" |
				awk '/^plumb_reconcile_total/ { s += $NF } END { print s + 0 }')"
			record S6 "$case" "${kind}_rss_end_mb" "$(fdiv "$(proc_hwm "$PLUMBD_PID")" 1024)"
			stop_plumbd "$PLUMBD_PID"
			[[ -n ${KEEP_LOGS:-} ]] && cp "$PLUMBD_LOG" "$out/"
			purge_plumb "$ns" "$@"
		done
	done
}
