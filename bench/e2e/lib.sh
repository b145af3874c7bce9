# Helpers for plumb's end-to-end benchmark (bench/run.sh). Sourced; needs:
#   ROOT BUILD PLUMB_TESTBED PLUMB_K8S_BIN WORK RAW
# RAW is the results file: one "scenario<TAB>case<TAB>metric<TAB>value" a line.
# Everything started here is recorded in bench_pids and stopped by bench_stop_all.

bench_pids=()

# json_check (a JSON check that fails on empty input, unlike `jq -e`) lives in tests/lib.sh.
# shellcheck source=tests/lib.sh
declare -F json_check >/dev/null || source "$ROOT/tests/lib.sh"

now() { echo "$EPOCHREALTIME"; }                            # seconds, µs resolution
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
fdiv() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print 0 }'; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RAW"; }  # SCENARIO CASE METRIC VALUE
say() { echo "bench: $*" >&2; }

cdir() { echo "$PLUMB_TESTBED/clusters/$1"; }
kc() { # CLUSTER ARGS…
	local c=$1
	shift
	"$PLUMB_K8S_BIN/kubectl" --kubeconfig "$(cdir "$c")/kubeconfig" "$@"
}
# api CLUSTER METHOD PATH [CURL ARGS…]: a request with the admin client certificate.
api() {
	local d m=$2 p=$3
	d=$(cdir "$1")
	shift 3
	local port
	port=$(sed -n 's/^APISERVER_PORT=//p' "$d/env")
	curl -sS --fail-with-body --max-time 30 --cacert "$d/ca.crt" --cert "$d/admin.crt" --key "$d/admin.key" \
		-X "$m" "https://127.0.0.1:$port$p" "$@"
}

bench_stop_all() {
	local p
	for p in "${bench_pids[@]}"; do
		kill -9 "$p" 2>/dev/null || true
	done
	for p in "${bench_pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	bench_pids=()
}

# ---- Git --------------------------------------------------------------------
git_up() {
	bash "$ROOT/hack/git-servers.sh" up "$WORK/git" >/dev/null 2>"$WORK/git-servers.log" || {
		cat "$WORK/git-servers.log" >&2
		return 1
	}
	# shellcheck disable=SC1091
	source "$WORK/git/env"
}
git_down() { [[ -d $WORK/git ]] && bash "$ROOT/hack/git-servers.sh" down "$WORK/git" >/dev/null 2>&1; return 0; }

# new_repo NAME N: a bare repo served over HTTPS with N ConfigMaps of ~1 KiB
# (cm/cm-NNNNN.yaml, no namespace: the GitSync's targetNamespace places them),
# a clone to commit in ($WT), and $WORK/NAME.jsonl: the same objects as JSON
# for bench_ceiling (see gen_cms).
new_repo() {
	local name=$1 n=$2
	repo_init "$name"
	gen_cms "$WT/cm" "$n" "$WORK/$name.jsonl"
	git_commit "$n ConfigMaps" >/dev/null
}

# repo_init NAME: an empty bare repo served over HTTPS ($REPO_URL) and a
# clone to commit in ($WT).
repo_init() {
	local name=$1
	REPO_URL="$HTTPS_BASIC_URL/$name.git"
	WT="$WORK/clone-$name"
	git init -q --bare -b main "$GIT_REPOS/$name.git"
	git init -q -b main "$WT"
	git -C "$WT" config user.email bench@plumb.dev
	git -C "$WT" config user.name "plumb bench"
	git -C "$WT" remote add origin "$GIT_REPOS/$name.git"
}

# gen_cms DIR N [JSONL]: N ConfigMaps of ~1 KiB, DIR/cm-NNNNN.yaml, and
# optionally JSONL: the same objects as JSON for bench_ceiling, with two
# ownership labels of the same size as plumb's (managed-by "plumb-ceiling",
# not "plumb": plumbd caches every object labelled managed-by=plumb in a
# target, and the ceiling's must not inflate its RSS).
gen_cms() {
	mkdir -p "$1"
	awk -v n="$2" -v dir="$1" -v jsonl="${3:-/dev/null}" 'BEGIN {
		pad = ""
		for (k = 0; k < 14; k++) pad = pad "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		for (i = 0; i < n; i++) {
			name = sprintf("cm-%05d", i)
			f = sprintf("%s/%s.yaml", dir, name)
			printf "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  labels: {app: bench}\ndata:\n  index: \"%d\"\n  rev: init-%d\n  payload: %s\n", name, i, i, pad > f
			close(f)
			printf "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\",\"labels\":{\"app\":\"bench\",\"app.kubernetes.io/managed-by\":\"plumb-ceiling\",\"plumb.dev/gitsync\":\"bench.ceiling\"}},\"data\":{\"index\":\"%d\",\"rev\":\"init-%d\",\"payload\":\"%s\"}}\n", name, i, i, pad > jsonl
		}
	}'
}

git_commit() { # MESSAGE: commit all in $WT, push; prints the id
	git -C "$WT" add -A
	git -C "$WT" commit -q -m "$1"
	git -C "$WT" push -q origin main 2>/dev/null
	git -C "$WT" rev-parse HEAD
}

# ---- management cluster -----------------------------------------------------
crds_up() {
	kc c1 apply -f "$ROOT/manifests/crds/" >/dev/null
	kc c1 wait --for=condition=Established --timeout=60s crd/gitsyncs.plumb.dev crd/clusters.plumb.dev >/dev/null
}

# mgmt_ns NS CLUSTER…: namespace NS in c1 with the Git and webhook Secrets and
# a kubeconfig Secret + Cluster for each target.
mgmt_ns() {
	local ns=$1 c
	shift
	kc c1 create namespace "$ns" >/dev/null
	kc c1 -n "$ns" create secret generic git-auth --from-literal=username="$BASIC_USER" \
		--from-literal=password="$BASIC_PASSWORD" --from-file=caFile="$CA_FILE" >/dev/null
	kc c1 -n "$ns" create secret generic hook --from-literal=token="$HOOK_TOKEN" >/dev/null
	for c in "$@"; do
		kc c1 -n "$ns" create secret generic "$c" --from-file=kubeconfig="$(cdir "$c")/kubeconfig" >/dev/null
		printf 'apiVersion: plumb.dev/v1alpha1\nkind: Cluster\nmetadata: {name: %s}\nspec: {kubeConfigSecretRef: {name: %s}}\n' \
			"$c" "$c" | kc c1 -n "$ns" apply -f - >/dev/null
	done
	MGMT_NAMESPACES+=("$ns")
}

# gitsync NS NAME TARGET-NS CLUSTER…: creates the GitSync (webhook enabled,
# 10 minute poll so only webhooks and watches trigger syncs) of path
# $GS_PATH (default cm).
gitsync() {
	local ns=$1 name=$2 tns=$3 list
	shift 3
	list=$(printf '%s,' "$@")
	kc c1 -n "$ns" apply -f - >/dev/null <<-EOF
		apiVersion: plumb.dev/v1alpha1
		kind: GitSync
		metadata: {name: $name}
		spec:
		  git: {url: "$REPO_URL", ref: {branch: main}, path: ${GS_PATH:-cm}, secretRef: {name: git-auth}, interval: 10m}
		  targets: {clusterNames: [${list%,}]}
		  targetNamespace: $tns
		  webhook: {secretRef: {name: hook}}
	EOF
}

# synced NS NAME COMMIT COUNT: every one of COUNT clusters reports Synced at COMMIT.
synced() {
	api c1 GET "/apis/plumb.dev/v1alpha1/namespaces/$1/gitsyncs/$2" 2>/dev/null |
		json_check --arg c "$3" --argjson n "$4" \
			'[.status.clusters[]? | select(.state == "Synced" and .commit == $c)] | length == $n' >/dev/null 2>&1
}

# wait_synced NS NAME COMMIT COUNT TIMEOUT: polls every 0.25 s.
wait_synced() {
	local end=$((SECONDS + $5))
	while ((SECONDS < end)); do
		synced "$1" "$2" "$3" "$4" && return 0
		sleep 0.25
	done
	say "timed out after $5 s waiting for $1/$2 at ${3:0:7} in $4 clusters"
	api c1 GET "/apis/plumb.dev/v1alpha1/namespaces/$1/gitsyncs/$2" | jq -c '.status.clusters' >&2 || true
	return 1
}

target_ns() { # NS CLUSTER…: creates namespace NS in each cluster
	local ns=$1 c
	shift
	for c in "$@"; do
		kc "$c" create namespace "$ns" >/dev/null
	done
}

# purge_plumb NS CLUSTER…: deletes what plumb applied in NS (one
# deletecollection per cluster, all at once), so that the next plumbd starts
# with targets holding only its own objects (it caches every plumb-managed
# object of a target, whichever GitSync it belongs to).
purge_plumb() { purge_labelled app.kubernetes.io%2Fmanaged-by%3Dplumb "$@"; }

# purge_labelled SELECTOR NS CLUSTER…: deletes the ConfigMaps of NS matching
# the (URL-encoded) label SELECTOR, one deletecollection per cluster, all at once.
purge_labelled() {
	local sel=$1 ns=$2 c pids=()
	shift 2
	for c in "$@"; do
		api "$c" DELETE "/api/v1/namespaces/$ns/configmaps?labelSelector=$sel" \
			--max-time 900 -o /dev/null &
		pids+=("$!")
	done
	for p in "${pids[@]}"; do wait "$p" || true; done
}

# ---- plumbd -----------------------------------------------------------------
# start_plumbd NS: a fresh plumbd (own Git cache) for management namespace NS,
# at log level PLUMBD_LOG_LEVEL (info), with --kustomize-bin KUSTOMIZE when
# that is set; sets PLUMBD_PID, METRICS_PORT, PLUMBD_LOG.
start_plumbd() {
	local tools=()
	[[ -n ${KUSTOMIZE:-} ]] && tools=(--kustomize-bin "$KUSTOMIZE")
	PLUMBD_LOG="$WORK/plumbd-$1.log"
	"$BUILD/plumbd" --kubeconfig "$(cdir c1)/kubeconfig" --namespace "$1" \
		--metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 --cache-dir "$WORK/cache-$1" \
		--log-level "${PLUMBD_LOG_LEVEL:-info}" "${tools[@]}" >"$PLUMBD_LOG" 2>&1 &
	PLUMBD_PID=$!
	bench_pids+=("$PLUMBD_PID")
	local end=$((SECONDS + 20))
	METRICS_PORT=""
	# The port is read from the whole "plumbd started" line: grep may see
	# the line before plumbd has finished writing it.
	until [[ $METRICS_PORT =~ ^[0-9]+$ ]]; do
		if ((SECONDS >= end)) || ! kill -0 "$PLUMBD_PID" 2>/dev/null; then
			say "plumbd did not start:"
			tail -20 "$PLUMBD_LOG" >&2
			return 1
		fi
		sleep 0.1
		METRICS_PORT=$({ grep -m1 '"plumbd started"' "$PLUMBD_LOG" | jq -r .metrics_port; } 2>/dev/null || true)
	done
}

stop_plumbd() { # PID
	kill -TERM "$1" 2>/dev/null || true
	local end=$((SECONDS + 40))
	while kill -0 "$1" 2>/dev/null && ((SECONDS < end)); do sleep 0.1; done
	kill -9 "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# proc_cpu PID: user + system CPU seconds so far; proc_hwm PID: peak RSS (KiB).
proc_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
proc_hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
proc_rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# ---- watches: timestamped event streams -------------------------------------
# watch_start CLUSTER NS OUT: streams ConfigMap events of NS in CLUSTER from
# now on into OUT, each line "<epoch seconds> <event JSON>".
watch_start() {
	local c=$1 ns=$2 out=$3 rv
	rv=$(api "$c" GET "/api/v1/namespaces/$ns/configmaps?limit=1" | jq -r .metadata.resourceVersion)
	: >"$out"
	(
		api "$c" GET "/api/v1/namespaces/$ns/configmaps?watch=1&resourceVersion=$rv" -N --max-time 3600 2>/dev/null |
			while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done >>"$out"
	) &
	bench_pids+=("$!")
}

# first_after FILE LINE PATTERN: "NR TIME" of the first line after line
# number LINE that contains PATTERN (fixed string); nothing if none yet.
first_after() {
	awk -v from="$2" -v p="$3" 'NR > from && index($0, p) { print NR, $1; exit }' "$1"
}

# ---- statistics -------------------------------------------------------------
# stats: reads numbers on stdin, prints "n median min max p50 p95 p99"
# (nearest-rank percentiles).
stats() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "0 - - - - - -"; exit }
		med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		split("50 95 99", ps, " ")
		for (i = 1; i <= 3; i++) { r = int((ps[i] / 100) * NR + 0.999999); if (r < 1) r = 1; q[i] = v[r] }
		printf "%d %.3f %.3f %.3f %.3f %.3f %.3f\n", NR, med, v[1], v[NR], q[1], q[2], q[3]
	}'
}
