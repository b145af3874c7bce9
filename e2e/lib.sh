# Shared helpers for plumb's end-to-end tests: real clusters from the test bed
# (c1 = management, c2 and c3 = targets), a real Git server over HTTPS with
# basic auth (hack/git-servers.sh), and plumbd run as a process.
#
# Source it after tests/lib.sh. It sets up, per test script:
#   NS        a fresh namespace in c1 holding the Clusters, Secrets and GitSyncs
#   WORK      a scratch dir (git servers, clones, plumbd logs), removed on exit
#   REPO      a bare repository served at $REPO_URL, WORKTREE a clone to commit in
# and cleans everything up (plumbd processes, git servers) on exit.

e2e_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD="$e2e_root/$BUILD"
: "${PLUMB_TESTBED:?PLUMB_TESTBED must point at a running test bed (hack/cluster.sh up 3)}"
: "${PLUMB_K8S_BIN:?PLUMB_K8S_BIN must hold kubectl}"

kc() {
	local c=$1
	shift
	"$PLUMB_K8S_BIN/kubectl" --kubeconfig "$PLUMB_TESTBED/clusters/$c/kubeconfig" "$@"
}

# wait_for SECONDS CMD…: polls CMD every 0.2 s until it succeeds.
wait_for() {
	local timeout=$1 end
	shift
	end=$(($(date +%s%N) / 1000000 + timeout * 1000))
	while (($(date +%s%N) / 1000000 < end)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "timed out after ${timeout}s: $*" >&2
	return 1
}

e2e_pids=()
e2e_cleanup() {
	for p in "${e2e_pids[@]}"; do
		kill -9 "$p" 2>/dev/null || true
	done
	# A crash or a sanitizer report in plumbd must show in the test log.
	if [[ -n ${WORK:-} ]] && grep -l -E "ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|Segmentation fault" "$WORK"/plumbd-*.log >/dev/null 2>&1; then
		echo "FAIL plumbd crashed or a sanitizer reported:"
		grep -h -A40 -E "ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:" "$WORK"/plumbd-*.log | head -120
	fi
	[[ -n ${WORK:-} && -d ${WORK:-} ]] && bash "$e2e_root/hack/git-servers.sh" down "$WORK/git" >/dev/null 2>&1
	[[ -n ${NS:-} ]] && kc c1 delete namespace "$NS" --wait=false >/dev/null 2>&1
	[[ -n ${WORK:-} ]] && rm -rf "$WORK"
	# a test bed of the test's own (e2e/workloads.sh)
	declare -F workloads_bed_down >/dev/null && workloads_bed_down
	return 0
}
trap e2e_cleanup EXIT

WORK=$(mktemp -d /tmp/plumb-e2e.XXXXXX)
NS=e2e-$(tr -dc a-z0-9 </dev/urandom | head -c 8)

bash "$e2e_root/hack/git-servers.sh" up "$WORK/git" >/dev/null 2>"$WORK/git-servers.log" || {
	cat "$WORK/git-servers.log"
	exit 1
}
# shellcheck disable=SC1091
source "$WORK/git/env"

kc c1 apply -f "$e2e_root/manifests/crds/" >/dev/null
kc c1 wait --for=condition=Established --timeout=60s crd/gitsyncs.plumb.dev crd/clusters.plumb.dev >/dev/null
kc c1 create namespace "$NS" >/dev/null

# register_cluster NAME LABELS…: a kubeconfig Secret and a Cluster in $NS.
register_cluster() {
	local name=$1
	shift
	kc c1 -n "$NS" create secret generic "$name" \
		--from-file=kubeconfig="$PLUMB_TESTBED/clusters/$name/kubeconfig" >/dev/null
	kc c1 -n "$NS" apply -f - >/dev/null <<-EOF
		apiVersion: plumb.dev/v1alpha1
		kind: Cluster
		metadata:
		  name: $name
		  labels: {$(IFS=,; echo "$*")}
		spec: {kubeConfigSecretRef: {name: $name}}
	EOF
}

# new_repo NAME: a bare repo served over HTTPS, and a clone to commit in.
new_repo() {
	REPO="$GIT_REPOS/$1.git"
	REPO_URL="$HTTPS_BASIC_URL/$1.git"
	WORKTREE="$WORK/clone-$1"
	git init -q --bare -b main "$REPO"
	git init -q -b main "$WORKTREE"
	git -C "$WORKTREE" config user.email e2e@plumb.dev
	git -C "$WORKTREE" config user.name "plumb e2e"
	git -C "$WORKTREE" remote add origin "$REPO"
	kc c1 -n "$NS" create secret generic git-auth --from-literal=username="$BASIC_USER" \
		--from-literal=password="$BASIC_PASSWORD" --from-file=caFile="$CA_FILE" \
		--dry-run=client -o yaml | kc c1 apply -f - >/dev/null
}

# webhook_secret NAME TOKEN: a Secret NAME in $NS holding a webhook's token.
webhook_secret() {
	kc c1 -n "$NS" create secret generic "$1" --from-literal=token="$2" >/dev/null
}

# write_app FILE NAMESPACE: the tests' smallest application in FILE (its
# folder is made): Namespace NAMESPACE and ConfigMap settings in it, with
# data LOG_LEVEL: info.
write_app() {
	mkdir -p "$(dirname "$1")"
	cat >"$1" <<-EOF
		apiVersion: v1
		kind: Namespace
		metadata: {name: $2}
		---
		apiVersion: v1
		kind: ConfigMap
		metadata: {name: settings, namespace: $2}
		data: {LOG_LEVEL: info}
	EOF
}

# write_widget_crd FILE GROUP [NAMES]: the CustomResourceDefinition of
# widgets.GROUP (kind Widget, namespaced, v1 with an integer spec.size) in
# FILE; NAMES is added to its names (e.g. "singular: widget").
write_widget_crd() {
	mkdir -p "$(dirname "$1")"
	cat >"$1" <<-EOF
		apiVersion: apiextensions.k8s.io/v1
		kind: CustomResourceDefinition
		metadata: {name: widgets.$2}
		spec:
		  group: $2
		  names: {kind: Widget, plural: widgets${3:+, $3}}
		  scope: Namespaced
		  versions:
		  - name: v1
		    served: true
		    storage: true
		    schema:
		      openAPIV3Schema:
		        type: object
		        properties:
		          spec:
		            type: object
		            properties:
		              size: {type: integer}
	EOF
}

# apply_gitsync NAME PATH INTERVAL [SPEC-LINE…]: applies GitSync NAME in $NS,
# reading PATH ("" for the repository's root) of branch main of $REPO_URL
# with the git-auth Secret, polling every INTERVAL; each SPEC-LINE is one more
# line of its spec, e.g. "targets: {clusterNames: [c2]}" or "debounce: 200ms".
apply_gitsync() {
	local name=$1 path=$2 interval=$3 line
	shift 3
	{
		printf 'apiVersion: plumb.dev/v1alpha1\nkind: GitSync\nmetadata: {name: %s}\nspec:\n' "$name"
		printf '  git: {url: %s, ref: {branch: main}, %ssecretRef: {name: git-auth}, interval: %s}\n' \
			"$REPO_URL" "${path:+path: $path, }" "$interval"
		for line in "$@"; do
			printf '  %s\n' "$line"
		done
	} | kc c1 -n "$NS" apply -f - >/dev/null
}

# commit MESSAGE: commits everything in $WORKTREE and pushes; prints the id.
commit() {
	git -C "$WORKTREE" add -A
	git -C "$WORKTREE" commit -q -m "$1"
	git -C "$WORKTREE" push -q origin main 2>/dev/null
	git -C "$WORKTREE" rev-parse HEAD
}

# start_plumbd NAME ARGS…: runs plumbd for $NS; sets PLUMBD_PID and
# METRICS_PORT, HEALTH_PORT (read from its start-up log line).
start_plumbd() {
	local name=$1 log="$WORK/plumbd-$1.log"
	shift
	"$BUILD/plumbd" --kubeconfig "$PLUMB_TESTBED/clusters/c1/kubeconfig" --namespace "$NS" \
		--metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 --cache-dir "$WORK/cache-$name" \
		--log-level debug "$@" >"$log" 2>&1 &
	PLUMBD_PID=$!
	e2e_pids+=("$PLUMBD_PID")
	# the whole start-up line: grep may see it before plumbd finished writing it
	wait_for 10 started_line_complete "$log" || { tail -20 "$log"; return 1; }
	METRICS_PORT=$(grep -m1 '"plumbd started"' "$log" | jq -r .metrics_port)
	HEALTH_PORT=$(grep -m1 '"plumbd started"' "$log" | jq -r .health_port)
}

started_line_complete() { # LOG: plumbd's start-up line is there and parses, with its ports
	local line
	line=$(grep -m1 '"plumbd started"' "$1") || return 1
	jq -e '(.metrics_port | test("^[0-9]+$")) and (.health_port | test("^[0-9]+$"))' <<<"$line" >/dev/null
}

metric() { # PORT SERIES-PREFIX: the value of the first matching series (0 if none)
	curl -s "http://127.0.0.1:$1/metrics" | awk -v p="$2" 'index($0, p) == 1 { print $NF; found = 1; exit } END { if (!found) print 0 }'
}

gs_jq() { # GITSYNC JQ-EXPR
	kc c1 -n "$NS" get gitsync "$1" -o json | jq -r "$2"
}

cluster_state() { # GITSYNC CLUSTER
	gs_jq "$1" ".status.clusters[]? | select(.name == \"$2\") | .state"
}

cluster_commit() { # GITSYNC CLUSTER
	gs_jq "$1" ".status.clusters[]? | select(.name == \"$2\") | .commit"
}

# Succeeds when both targets report commit ID as applied and Synced.
synced_at() { # GITSYNC ID
	[[ $(cluster_commit "$1" c2) == "$2" && $(cluster_commit "$1" c3) == "$2" &&
		$(cluster_state "$1" c2) == Synced && $(cluster_state "$1" c3) == Synced ]]
}

# Write requests (create, update, patch, delete) plumbd sent to cluster C
# since TIMESTAMP (RFC 3339), from the apiserver's audit log.
writes_since() { # CLUSTER TIMESTAMP
	jq -r --arg since "$2" 'select(.userAgent != null and (.userAgent | startswith("plumb/")))
		| select(.stageTimestamp >= $since)
		| select(.verb == "create" or .verb == "update" or .verb == "patch" or .verb == "delete")
		| "\(.verb) \(.requestURI)"' "$PLUMB_TESTBED/clusters/$1/audit.log"
}

hmac_sha256() { # SECRET BODY
	printf '%s' "$2" | openssl dgst -sha256 -hmac "$1" | awk '{print $NF}'
}

# ---- an install's own RBAC and flags (e2e/test_install_rbac.sh, test_shards.sh) ----
# install_rbac FILE: the ServiceAccount, ClusterRole, Role and bindings of a
# rendered install (FILE: manifests/install/plumb.yaml or a helm template),
# moved to namespace $INS and names $REL, in $WORK/rbac.yaml.
install_rbac() {
	python3 - "$1" "$INS" "$REL" >"$WORK/rbac.yaml" <<-'EOF'
		import sys, yaml
		src, ns, rel = sys.argv[1:4]
		keep = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
		names = {"plumb-system": ns, "plumb": rel, "plumb-leader-election": rel + "-leader-election"}
		def walk(v):
		    if isinstance(v, dict):
		        return {k: walk(x) for k, x in v.items()}
		    if isinstance(v, list):
		        return [walk(x) for x in v]
		    return names.get(v, v) if isinstance(v, str) else v
		docs = [walk(d) for d in yaml.safe_load_all(open(src)) if d and d["kind"] in keep]
		yaml.safe_dump_all(docs, sys.stdout)
	EOF
}

# sa_kubeconfig: $kcfg ($WORK/sa.kubeconfig) holding nothing but a token of
# the ServiceAccount $REL in $INS; kk runs kubectl with it.
kk() { "$PLUMB_K8S_BIN/kubectl" --kubeconfig "$kcfg" "$@"; }
sa_kubeconfig() {
	local server token
	kcfg="$WORK/sa.kubeconfig"
	server=$(kc c1 config view --minify -o jsonpath='{.clusters[0].cluster.server}')
	token=$(kc c1 create token "$REL" -n "$INS" --duration=1h)
	kk config set-cluster c1 --server="$server" --certificate-authority="$PLUMB_TESTBED/clusters/c1/ca.crt" --embed-certs >/dev/null
	kk config set-credentials sa --token="$token" >/dev/null
	kk config set-context sa --cluster=c1 --user=sa --namespace="$INS" >/dev/null
	kk config use-context sa >/dev/null
}

# deployment_args FILE: plumbd's flags as the install's Deployment gives them,
# one a line, with this run's names ($INS, $REL), loopback ports and a cache
# dir of $WORK/cache-CACHE (CACHE: replace it per replica).
deployment_args() {
	python3 - "$1" "$INS" "$REL" "$WORK" <<-'EOF'
		import sys, yaml
		src, ns, rel, work = sys.argv[1:5]
		for d in yaml.safe_load_all(open(src)):
		    if d and d["kind"] == "Deployment":
		        for a in d["spec"]["template"]["spec"]["containers"][0]["args"]:
		            k = a.split("=", 1)[0]
		            a = {"--lease-name": "--lease-name=" + rel, "--lease-namespace": "--lease-namespace=" + ns,
		                 "--metrics-addr": "--metrics-addr=127.0.0.1:0", "--health-addr": "--health-addr=127.0.0.1:0",
		                 "--log-level": "--log-level=debug", "--cache-dir": "--cache-dir=" + work + "/cache-CACHE",
		                 "--webhook-addr": "--webhook-addr=127.0.0.1:0"}.get(k, a)
		            print(a)
	EOF
}
