# Flux beside plumb in plumb's end-to-end benchmark (bench/run.sh): scenario 7
# (initial sync), and with 7 wanted, Flux's runs of scenarios 2, 3 and 4 after
# plumb's in the same run (steady state, commit → applied, drift). Sourced after bench/e2e/lib.sh and bench/e2e/scenarios.sh; needs
# FLUX_BIN (hack/build-flux.sh's bin dir) besides what lib.sh needs.
#
# Flux runs as its two controllers, source-controller and kustomize-controller
# (v1.9.6, hack/flux/), as processes out of cluster with KUBECONFIG pointing at
# the management cluster c1, each fresh for one measurement, watching only
# that measurement's namespace of c1 (--watch-all-namespaces=false with
# RUNTIME_NAMESPACE), on loopback ports of their own, with Flux's default
# concurrency (source 2, kustomize 4 reconciles). The objects are those of a
# Flux user: one GitRepository (the bench's HTTPS Git server, basic auth and
# its CA from a Secret with username, password and ca.crt) and one
# Kustomization per target cluster (spec.kubeConfig.secretRef: a Secret with
# the target's kubeconfig under key "value"; prune: true, force: false,
# wait: false as the test bed has no kubelets, targetNamespace as plumb's
# GitSync). Both intervals are 1m, the interval Flux's own guides give
# Kustomizations and the minimum Flux documents for .spec.interval ("The
# minimum value should be 60 seconds"); only the drift scenario waits for an
# interval: the initial sync starts on creation, a commit is announced with
# reconcile.fluxcd.io/requestedAt. FLUX_ARGS is passed to both controllers,
# FLUX_KUSTOMIZE_ARGS (e.g. "--concurrent-ssa=16") to kustomize-controller.
# Flux's --kube-api-qps/--kube-api-burst do nothing on this test bed: its
# clients drop their rate limiter when the API server has priority and
# fairness (fluxcd/pkg runtime/client: GetConfigOrDie, KubeConfig).

FLUX_INTERVAL=${FLUX_INTERVAL:-1m}
FLUX_S2_TIMEOUT=${FLUX_S2_TIMEOUT:-900}   # seconds for the initial sync before Flux's steady state
S7_DEADLINE=${S7_DEADLINE:-999999999}     # SECONDS after which s7 starts no repeat (bench/run.sh sets it)
FLUX_AGENTS='^(source-controller|kustomize-controller)/'   # the controllers' user agents

# flux_mod_dir CONTROLLER: the controller module's directory in the Go module
# cache (downloads it if the cache lost it).
flux_mod_dir() {
	(cd "$ROOT/hack/flux/$1" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' "github.com/fluxcd/$1")
}

# flux_crds_up: the controllers' CRDs in c1, from the controller modules'
# config/crd/bases: all of source-controller's (it will not start without
# every kind it serves: Bucket, HelmRepository, …), kustomize-controller's
# Kustomization (server-side: they are too large for the last-applied
# annotation).
flux_crds_up() {
	local sc kc_dir
	sc=$(flux_mod_dir source-controller) && kc_dir=$(flux_mod_dir kustomize-controller) || return 1
	kc c1 apply --server-side -f "$sc/config/crd/bases/" -f "$kc_dir/config/crd/bases/" >/dev/null || return 1
	kc c1 wait --for=condition=Established --timeout=60s crd/gitrepositories.source.toolkit.fluxcd.io \
		crd/kustomizations.kustomize.toolkit.fluxcd.io >/dev/null
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# flux_ns NS CLUSTER…: namespace NS in c1 with the Git Secret and a kubeconfig
# Secret (key "value") for each target.
flux_ns() {
	local ns=$1 c
	shift
	kc c1 create namespace "$ns" >/dev/null
	kc c1 -n "$ns" create secret generic git-auth --from-literal=username="$BASIC_USER" \
		--from-literal=password="$BASIC_PASSWORD" --from-file=ca.crt="$CA_FILE" >/dev/null
	for c in "$@"; do
		kc c1 -n "$ns" create secret generic "$c-kubeconfig" --from-file=value="$(cdir "$c")/kubeconfig" >/dev/null
	done
	MGMT_NAMESPACES+=("$ns")
}

# flux_start NS: fresh source- and kustomize-controllers watching NS of c1;
# returns when both report ready. Sets FLUX_SC_PID, FLUX_KC_PID.
# shellcheck disable=SC2086
flux_start() {
	local ns=$1 sp sh sm kh km end
	sp=$(free_port) sh=$(free_port) sm=$(free_port) kh=$(free_port) km=$(free_port)
	mkdir -p "$WORK/flux-storage-$ns"
	KUBECONFIG=$(cdir c1)/kubeconfig RUNTIME_NAMESPACE=$ns "$FLUX_BIN/source-controller" \
		--watch-all-namespaces=false --storage-path "$WORK/flux-storage-$ns" \
		--storage-addr "127.0.0.1:$sp" --storage-adv-addr "127.0.0.1:$sp" \
		--metrics-addr "127.0.0.1:$sm" --health-addr "127.0.0.1:$sh" \
		--log-encoding json ${FLUX_ARGS:-} >"$WORK/flux-source-$ns.log" 2>&1 &
	FLUX_SC_PID=$!
	bench_pids+=("$FLUX_SC_PID")
	KUBECONFIG=$(cdir c1)/kubeconfig RUNTIME_NAMESPACE=$ns "$FLUX_BIN/kustomize-controller" \
		--watch-all-namespaces=false --metrics-addr "127.0.0.1:$km" --health-addr "127.0.0.1:$kh" \
		--log-encoding json ${FLUX_ARGS:-} ${FLUX_KUSTOMIZE_ARGS:-} >"$WORK/flux-kustomize-$ns.log" 2>&1 &
	FLUX_KC_PID=$!
	bench_pids+=("$FLUX_KC_PID")
	end=$((SECONDS + 60))
	until curl -sf -o /dev/null "http://127.0.0.1:$sh/readyz" && curl -sf -o /dev/null "http://127.0.0.1:$kh/readyz"; do
		if ((SECONDS >= end)) || ! kill -0 "$FLUX_SC_PID" 2>/dev/null || ! kill -0 "$FLUX_KC_PID" 2>/dev/null; then
			say "Flux's controllers did not start:"
			tail -5 "$WORK/flux-source-$ns.log" "$WORK/flux-kustomize-$ns.log" >&2
			return 1
		fi
		sleep 0.1
	done
}

flux_stop() { # stops the controllers flux_start started
	stop_plumbd "$FLUX_SC_PID"
	stop_plumbd "$FLUX_KC_PID"
}

# flux_objects NS TARGET-NS CLUSTER…: the GitRepository "bench" ($REPO_URL,
# path $GS_PATH or cm) and a Kustomization "to-CLUSTER" per target, as YAML.
flux_objects() {
	local ns=$1 tns=$2 c
	shift 2
	cat <<-EOF
		apiVersion: source.toolkit.fluxcd.io/v1
		kind: GitRepository
		metadata: {name: bench, namespace: $ns}
		spec:
		  url: "$REPO_URL"
		  ref: {branch: main}
		  secretRef: {name: git-auth}
		  interval: $FLUX_INTERVAL
	EOF
	for c in "$@"; do
		cat <<-EOF
			---
			apiVersion: kustomize.toolkit.fluxcd.io/v1
			kind: Kustomization
			metadata: {name: to-$c, namespace: $ns}
			spec:
			  sourceRef: {kind: GitRepository, name: bench}
			  path: ./${GS_PATH:-cm}
			  targetNamespace: $tns
			  kubeConfig: {secretRef: {name: $c-kubeconfig, key: value}}
			  interval: $FLUX_INTERVAL
			  prune: true
			  force: false
			  wait: false
		EOF
	done
}

# flux_state NS COMMIT: "1" if the GitRepository has its artifact at COMMIT
# ("0" if not), then "NAME READY APPLIED" for each Kustomization: READY 1 if
# it is Ready with COMMIT applied, APPLIED 1 if COMMIT is its last applied
# revision (whether or not a later reconcile is in progress).
flux_state() {
	local src
	src=$(api c1 GET "/apis/source.toolkit.fluxcd.io/v1/namespaces/$1/gitrepositories/bench" 2>/dev/null |
		jq -r --arg r "main@sha1:$2" 'if .status.artifact.revision == $r then 1 else 0 end' 2>/dev/null) || src=0
	echo "${src:-0}"
	api c1 GET "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/$1/kustomizations" 2>/dev/null |
		jq -r --arg r "main@sha1:$2" '.items[] | (.status.lastAppliedRevision == $r) as $a
			| "\(.metadata.name) \(if $a and any(.status.conditions[]?; .type == "Ready" and .status == "True") then 1 else 0 end) \(if $a then 1 else 0 end)"' 2>/dev/null || true
}

# flux_wait NS COMMIT COUNT TIMEOUT T0: polls every 0.25 s until each of the
# COUNT Kustomizations has been seen Ready at COMMIT (each at its own moment:
# with a 1m interval a slow Kustomization may already be reconciling again,
# Ready Unknown, when the last one turns Ready). Sets FLUX_SRC_S (T0 →
# artifact at COMMIT, as first seen) and FLUX_S (T0 → the last one seen Ready).
flux_wait() {
	local ns=$1 commit=$2 count=$3 end=$((SECONDS + $4)) t0=$5 src name ready
	local -A seen=()
	FLUX_SRC_S=""
	while ((SECONDS < end)); do
		{
			read -r src
			while read -r name ready _; do
				[[ $ready == 1 && -z ${seen[$name]:-} ]] && seen[$name]=1
			done
		} < <(flux_state "$ns" "$commit")
		[[ -z $FLUX_SRC_S && $src == 1 ]] && FLUX_SRC_S=$(fsub "$(now)" "$t0")
		if ((${#seen[@]} == count)); then
			FLUX_S=$(fsub "$(now)" "$t0")
			[[ -n $FLUX_SRC_S ]] || FLUX_SRC_S=$FLUX_S
			return 0
		fi
		sleep 0.25
	done
	say "timed out after $4 s waiting for Flux in $ns at ${commit:0:7} in $count clusters"
	api c1 GET "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/$ns/kustomizations" |
		jq -c '.items[] | {name: .metadata.name, rev: .status.lastAppliedRevision, conditions: [.status.conditions[]? | {type, status, message}]}' >&2 || true
	return 1
}

# flux_count NS N CLUSTER…: every target holds N ConfigMaps applied by Flux
# in NS (checked after the timed part: Ready at the commit is what is timed).
flux_count() {
	local ns=$1 n=$2 c got
	shift 2
	for c in "$@"; do
		got=$(api "$c" GET "/api/v1/namespaces/$ns/configmaps?labelSelector=kustomize.toolkit.fluxcd.io%2Fnamespace" \
			-H 'Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1' --max-time 120 | jq -r '.items | length')
		[[ $got == "$n" ]] || { say "Flux applied $got ConfigMaps in $c/$ns, not $n"; return 1; }
	done
}

# flux_run NS COMMIT N TIMEOUT CLUSTER…: fresh controllers, then the
# GitRepository and the Kustomizations; measures their creation → every
# Kustomization Ready at COMMIT. Sets FLUX_S, FLUX_SRC_S, FLUX_CPU (both
# controllers' user + system seconds during it), FLUX_SC_HWM_KB,
# FLUX_KC_HWM_KB (peak RSS of each) and leaves the controllers running.
# Returns 2 if Flux did not get there within TIMEOUT seconds (FLUX_CPU and
# the peaks are then those until the timeout).
flux_run() {
	local ns=$1 commit=$2 n=$3 timeout=$4 t0 c0 rc=0
	shift 4
	flux_ns "$ns" "$@"
	target_ns "$ns" "$@"
	flux_start "$ns" || return 1
	c0=$(flux_sum proc_cpu)
	t0=$(now)
	flux_objects "$ns" "$ns" "$@" | kc c1 apply -f - >/dev/null || return 1
	flux_wait "$ns" "$commit" "$#" "$timeout" "$t0" || rc=2
	FLUX_CPU=$(fsub "$(flux_sum proc_cpu)" "$c0")
	FLUX_SC_HWM_KB=$(proc_hwm "$FLUX_SC_PID")
	FLUX_KC_HWM_KB=$(proc_hwm "$FLUX_KC_PID")
	((rc == 0)) || return "$rc"
	flux_count "$ns" "$n" "$@"
}

# flux_unfinished SCENARIO CASE SECONDS: records that Flux's initial sync
# had not finished after SECONDS, with its CPU and peak RSS by then.
flux_unfinished() {
	record "$1" "$2" flux_unfinished_s "$3"
	record "$1" "$2" flux_unfinished_cpu_s "$FLUX_CPU"
	record "$1" "$2" flux_unfinished_rss_mb "$(fdiv $((FLUX_SC_HWM_KB + FLUX_KC_HWM_KB)) 1024)"
	say "  Flux had not finished after $3 s (cpu $FLUX_CPU s); stopped"
}

# flux_purge NS CLUSTER…: deletes what Flux applied in NS of each target.
flux_purge() { purge_labelled kustomize.toolkit.fluxcd.io%2Fnamespace "$@"; }

# s7 N T REPEATS: initial sync of N ConfigMaps to T clusters, plumb (as S1
# runs it) and Flux back to back in each repeat, the order alternating;
# wall time, objects/s, CPU seconds and peak RSS of plumbd and of Flux's two
# controllers together.
s7() {
	local n=$1 t=$2 reps=$3 r who ns commit case timeout hwm rstart d_prev=0 rc
	# shellcheck disable=SC2046
	set -- $(targets_of "$t")
	s1_repo "$n" "$t"
	case="N=$n T=$t" commit=$S1_COMMIT
	for ((r = 1; r <= reps; r++)); do
		if ((SECONDS + d_prev > S7_DEADLINE)); then
			say "S7 $case: Flux's time budget spent, $((r - 1)) repeat(s)"
			break
		fi
		rstart=$SECONDS
		# Flux gets what is left of the budget (at least 5 min, at most three
		# times plumb's timeout), plumb its usual timeout
		timeout=$((S7_DEADLINE - SECONDS))
		((timeout > 3 * S1_TIMEOUT)) && timeout=$((3 * S1_TIMEOUT))
		((timeout < 300)) && timeout=300
		local order=(plumb flux)
		((r % 2 == 0)) && order=(flux plumb)
		for who in "${order[@]}"; do
			ns=s7-$who-$n-$t-$r-$RUN_ID
			say "S7 initial sync $case, $who, repeat $r/$reps (load $(cut -d' ' -f1 /proc/loadavg))"
			if [[ $who == plumb ]]; then
				plumb_run "$ns" "$commit" "$n" "$S1_TIMEOUT" "$@" || return 1
				record S7 "$case" plumb_s "$RUN_S"
				record S7 "$case" plumb_objps "$(fdiv $((n * t)) "$RUN_S")"
				record S7 "$case" plumb_cpu_s "$RUN_CPU"
				record S7 "$case" plumb_rss_mb "$(fdiv "$RUN_HWM_KB" 1024)"
				say "  plumb: ${RUN_S} s, $(fdiv $((n * t)) "$RUN_S") obj/s, cpu ${RUN_CPU} s, peak RSS $(fdiv "$RUN_HWM_KB" 1024) MiB"
				stop_plumbd "$PLUMBD_PID"
				purge_plumb "$ns" "$@"
			else
				rc=0
				flux_run "$ns" "$commit" "$n" "$timeout" "$@" || rc=$?
				((rc == 0 || rc == 2)) || return 1
				if ((rc == 2)); then
					flux_unfinished S7 "$case" "$timeout"
					flux_stop
					flux_purge "$ns" "$@"
					reps=$r   # no further repeat of a case Flux cannot finish in the budget
					continue
				fi
				hwm=$((FLUX_SC_HWM_KB + FLUX_KC_HWM_KB))
				record S7 "$case" flux_s "$FLUX_S"
				record S7 "$case" flux_source_s "$FLUX_SRC_S"
				record S7 "$case" flux_objps "$(fdiv $((n * t)) "$FLUX_S")"
				record S7 "$case" flux_cpu_s "$FLUX_CPU"
				record S7 "$case" flux_rss_mb "$(fdiv "$hwm" 1024)"
				record S7 "$case" flux_source_rss_mb "$(fdiv "$FLUX_SC_HWM_KB" 1024)"
				record S7 "$case" flux_kustomize_rss_mb "$(fdiv "$FLUX_KC_HWM_KB" 1024)"
				say "  Flux: ${FLUX_S} s (artifact after ${FLUX_SRC_S} s), $(fdiv $((n * t)) "$FLUX_S") obj/s, cpu ${FLUX_CPU} s," \
					"peak RSS $(fdiv "$hwm" 1024) MiB (source $(fdiv "$FLUX_SC_HWM_KB" 1024), kustomize $(fdiv "$FLUX_KC_HWM_KB" 1024))"
				flux_stop
				flux_purge "$ns" "$@"
			fi
		done
		d_prev=$((SECONDS - rstart))
	done
}

# flux_sum FN: FN (proc_cpu, proc_rss or proc_hwm) of the two controllers, summed.
flux_sum() { awk -v a="$("$1" "$FLUX_SC_PID")" -v b="$("$1" "$FLUX_KC_PID")" 'BEGIN { print a + b }'; }

# flux_s2 N T SECONDS: Flux's steady state beside S2's: fresh controllers
# synced N ConfigMaps (S2's repository and commit) to T clusters (if that
# takes more than FLUX_S2_TIMEOUT seconds, it is recorded as unfinished and
# there is no steady state to measure), then
# SECONDS with nothing changing: API requests by verb and by controller
# (audit logs of c1 and the targets, user agents source-controller/… and
# kustomize-controller/…), writes, dry runs, CPU and RSS of both.
flux_s2() {
	local n=$1 t=$2 dur=$3 ns case="N=$1 T=$2" cpu0 cpu1 applied
	# shellcheck disable=SC2046
	set -- $(targets_of "$t")
	s1_repo "$n" "$t"
	ns=s2-flux-$n-$t-$RUN_ID
	say "S2 steady state $case, Flux: initial sync (load $(cut -d' ' -f1 /proc/loadavg))"
	local rc=0 timeout=$((S1_TIMEOUT < FLUX_S2_TIMEOUT ? S1_TIMEOUT : FLUX_S2_TIMEOUT))
	flux_run "$ns" "$S1_COMMIT" "$n" "$timeout" "$@" || rc=$?
	if ((rc == 2)); then
		flux_unfinished S2 "$case" "$timeout"
		flux_stop
		flux_purge "$ns" "$@"
		return 0
	fi
	((rc == 0)) || return 1
	say "  synced in $FLUX_S s; steady state for $dur s"
	sleep 5
	audit_mark c1 "$@"
	cpu0=$(flux_sum proc_cpu)
	sleep "$dur"
	cpu1=$(flux_sum proc_cpu)
	applied=$(flux_state "$ns" "$S1_COMMIT" | awk 'NR > 1 { s += $3 } END { print s + 0 }')
	[[ $applied == "$t" ]] || { say "Flux has the commit applied in $applied of $t clusters after the steady state"; return 1; }
	audit_since "$FLUX_AGENTS" c1 "$@" >"$WORK/s2-flux-audit.txt"
	record S2 "$case" flux_seconds "$dur"
	record_requests "$case" flux_ "$dur" "$WORK/s2-flux-audit.txt"
	record S2 "$case" flux_cpu_s "$(fsub "$cpu1" "$cpu0")"
	record S2 "$case" flux_cpu_pct_of_core "$(awk -v a="$cpu0" -v b="$cpu1" -v d="$dur" 'BEGIN { printf "%.2f", (b - a) * 100 / d }')"
	record S2 "$case" flux_rss_mb "$(fdiv "$(flux_sum proc_rss)" 1024)"
	record S2 "$case" flux_peak_rss_mb "$(fdiv "$(flux_sum proc_hwm)" 1024)"
	say "  Flux requests by verb: $REQ_VERBS; writes $REQ_WRITES, dry runs $REQ_DRYRUNS; cpu $(fsub "$cpu1" "$cpu0") s"
	flux_stop
	flux_purge "$ns" "$@"
}

# flux_reconcile_now NS: what `flux reconcile source git` does: the
# reconcile.fluxcd.io/requestedAt annotation on GitRepository NS/bench.
flux_reconcile_now() {
	api c1 PATCH "/apis/source.toolkit.fluxcd.io/v1/namespaces/$1/gitrepositories/bench" \
		-H 'Content-Type: application/merge-patch+json' -o /dev/null \
		-d "{\"metadata\":{\"annotations\":{\"reconcile.fluxcd.io/requestedAt\":\"$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)\"}}}"
}

# flux_s3_s4 COMMITS EDITS SPACING: Flux's S3 and S4 on a repository like
# s3_s4's (100 ConfigMaps, its own copy), 3 targets. S3: COMMITS commits as
# s3_s4 makes them, each announced with flux_reconcile_now right after the
# push; latency until the new value is seen on a watch in all three. S4:
# EDITS out-of-band edits as s3_s4 makes them, one every SPACING seconds
# without waiting for the previous correction (Flux corrects only on its
# Kustomization interval, so waiting in turn would take an interval per
# edit), then up to an interval + 60 s for the last; latency from each
# edit's watch event to its correction's. The edits fall at arbitrary
# phases of the three Kustomizations' intervals.
flux_s3_s4() {
	local commits=$1 edits=$2 spacing=$3 ns=s3-flux-$RUN_ID k c idx m lat end ival left
	local -a tg=(c2 c3 c4) e_c e_idx e_m e_line e_want
	new_repo flux-lat 100
	flux_run "$ns" "$(git -C "$WT" rev-parse HEAD)" 100 180 "${tg[@]}" || return 1
	for c in "${tg[@]}"; do watch_start "$c" "$ns" "$WORK/fwatch-$c"; done
	sleep 2
	say "S3 commit → applied, Flux: $commits commits, requestedAt-triggered, 3 targets"
	for ((k = 1; k <= commits; k++)); do
		commit_applied "$k" "$WORK/fwatch" 90 flux_reconcile_now "$ns" || return 1
		record S3 "100 objects, 3 targets" flux_latency_s "$COMMIT_LAT"
		sleep 1
	done
	ival=$(awk -v i="$FLUX_INTERVAL" 'BEGIN { v = i + 0; if (i ~ /m$/) v *= 60; else if (i ~ /h$/) v *= 3600; print v }')
	say "S4 drift correction, Flux: $edits out-of-band edits, one every $spacing s, interval $FLUX_INTERVAL"
	for ((k = 1; k <= edits; k++)); do
		c=${tg[k % 3]}
		idx=$(((k * 53 + 7) % 100))
		m=drift-$k-$RANDOM
		e_c[k]=$c e_idx[k]=$idx e_m[k]=$m e_line[k]=$(wc -l <"$WORK/fwatch-$c")
		e_want[k]=$(sed -n 's/^  rev: //p' "$WT/cm/$(printf 'cm-%05d' "$idx").yaml")
		api "$c" PATCH "/api/v1/namespaces/$ns/configmaps/$(printf 'cm-%05d' "$idx")?fieldManager=bench-editor" \
			-H 'Content-Type: application/merge-patch+json' -d "{\"data\":{\"rev\":\"$m\"}}" -o /dev/null || return 1
		((k < edits)) && sleep "$spacing"
	done
	end=$((SECONDS + ival * 21 / 20 + 60))
	while :; do
		left=0
		for ((k = 1; k <= edits; k++)); do
			[[ -n $(flux_corrected "$k") ]] || left=$((left + 1))
		done
		((left == 0 || SECONDS >= end)) && break
		sleep 1
	done
	((left == 0)) || { say "$left of $edits edits not corrected by Flux within an interval + 60 s"; return 1; }
	for ((k = 1; k <= edits; k++)); do
		record S4 "100 objects, 3 targets" flux_latency_s "$(flux_corrected "$k")"
	done
	record S4 "100 objects, 3 targets" flux_interval_s "$ival"
	flux_stop
	flux_purge "$ns" "${tg[@]}"
}

# flux_corrected K: flux_s3_s4's K-th edit: seconds from its watch event to
# the event restoring the value from Git, nothing if not corrected yet
# (reads e_c, e_line, e_m, e_want of the caller).
flux_corrected() {
	local w="$WORK/fwatch-${e_c[$1]}" la ta tb
	read -r la ta < <(first_after "$w" "${e_line[$1]}" "\"rev\":\"${e_m[$1]}\"") || return 0
	read -r _ tb < <(first_after "$w" "$la" "\"rev\":\"${e_want[$1]}\"") || return 0
	fsub "$tb" "$ta"
}
