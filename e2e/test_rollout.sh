#!/usr/bin/env bash
# spec.rollout end to end, on a test bed of its own where workloads really
# roll out (hack/cluster.sh up 4 --workloads). c1 is the management cluster;
# the targets are c2 (the canary wave) and c3, c4 (wave eu, maxUnavailable
# 1). Each commit changes a ConfigMap's data.version and a Deployment; what
# each cluster holds is read from the clusters themselves.
#  - the first commit and a good one walk the waves: eu gets nothing while
#    the canary is not healthy or bakes, c4 only once c3 is healthy;
#  - paused, a commit moves nowhere; resumed, it goes through;
#  - a commit whose pods KWOK fails halts at the canary (Degraded past
#    healthTimeout): c3 and c4 stay at the previous commit, status and
#    Events say so; with onFailure Rollback the canary gets the previous
#    good commit back;
#  - the leader is killed (kill -9) 8 s into the 20 s bake of wave canary
#    (leases of 4 s): the standby
#    goes on with the same bake (same bakeStartedAt), does not update eu
#    before the bake is over, and finishes the rollout.
#
# Test bed: workloads (hack/run-tests.sh runs it last and builds the bed's
# binaries in the background first)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/tests/lib.sh"

source "$root/e2e/workloads.sh"
workloads_bed 4 || exit 1
source "$root/e2e/lib.sh"
rollout_cleanup() {
	# PLUMB_KEEP_LOGS=DIR keeps plumbd's logs of a failed run
	if [[ -n ${PLUMB_KEEP_LOGS:-} && $t_failed -gt 0 ]]; then
		mkdir -p "$PLUMB_KEEP_LOGS" && cp "$WORK"/plumbd-*.log "$PLUMB_KEEP_LOGS"/
	fi
	e2e_cleanup
}
trap rollout_cleanup EXIT

TNS=$NS-app
FAIL_LABEL=pod-container-running-failed.stage.kwok.x-k8s.io

register_cluster c2 "canary: \"true\"" "region: us"
register_cluster c3 "region: eu"
register_cluster c4 "region: eu"
new_repo rollout

# release VERSION [fail]: the revision: Namespace, ConfigMap release with
# data.version VERSION, Deployment web (1 replica, Available 5 s after its
# pod is Ready; with fail, KWOK fails its pods, which are Ready a moment
# first).
release() {
	mkdir -p "$WORKTREE/app"
	cat >"$WORKTREE/app/app.yaml" <<-EOF
		apiVersion: v1
		kind: Namespace
		metadata: {name: $TNS}
		---
		apiVersion: v1
		kind: ConfigMap
		metadata: {name: release, namespace: $TNS}
		data: {version: "$1"}
		---
		apiVersion: apps/v1
		kind: Deployment
		metadata: {name: web, namespace: $TNS}
		spec:
		  replicas: 1
		  minReadySeconds: 5
		  selector: {matchLabels: {app: web}}
		  template:
		    metadata:
		      labels: {app: web, version: "$1"${2:+, $FAIL_LABEL: \"true\"}}
		    spec:
		      containers: [{name: main, image: "registry.invalid/web:$1"}]
	EOF
	commit "release $1"
}

# t_match NAME STRING REGEX
t_match() { if [[ $2 =~ $3 ]]; then t_ok "$1" true; else t_eq "$1" "/$3/" "$2"; fi; }
version() { kc "$1" -n "$TNS" get configmap release -o jsonpath='{.data.version}' 2>/dev/null; }
version_is() { [[ $(version "$1") == "$2" ]]; }
ro() { gs_jq app ".status.rollout.$1 // \"\""; }
ro_is() { [[ $(ro "$1") == "$2" ]]; }
wave() { gs_jq app ".status.rollout.waves[]? | select(.name == \"$1\") | .$2 // \"\""; }
wave_is() { [[ $(wave "$1" state) == "$2" ]]; }
applied_at() { # CLUSTER: when plumb last wrote ConfigMap release there
	kc "$1" -n "$TNS" get configmap release -o json --show-managed-fields |
		jq -r '[.metadata.managedFields[] | select(.manager == "plumb") | .time] | max // ""'
}
available_at() { # CLUSTER
	kc "$1" -n "$TNS" get deployment web -o jsonpath='{.status.conditions[?(@.type=="Available")].lastTransitionTime}'
}
events_with() { # REASON: how many Events of the GitSync have it
	kc c1 -n "$NS" get events --field-selector "reason=$1" -o name | grep -c .
}
template_is() { # CLUSTER VERSION: the Deployment's pod template is that release's
	[[ $(kc "$1" -n "$TNS" get deployment web -o jsonpath='{.spec.template.metadata.labels.version}') == "$2" ]]
}
baking_at() { # COMMIT: wave canary of the rollout of COMMIT bakes
	gs_jq app . | json_check --arg c "$1" '.status.rollout.commit == $c and
		([.status.rollout.waves[] | select(.name == "canary") | .state] == ["Baking"])'
}
is_leader() { [[ $(metric "$1" "plumb_leader ") == 1 ]]; }

gitsync() { # BAKE ONFAILURE
	apply_gitsync app app 10s "targets: {clusterSelector: {}}" "debounce: 100ms" "healthTimeout: 15s" \
		"rollout: {waves: [{name: canary, clusterSelector: {matchLabels: {canary: \"true\"}}}, {name: eu, clusterSelector: {matchLabels: {region: eu}}, maxUnavailable: 1}], bake: $1, onFailure: $2}"
}

# short leases, so a failover takes seconds, not the default 15
lease=(--leader-elect --lease-namespace "$NS" --lease-duration 4s --lease-renew-deadline 3s --lease-retry-period 1s)
start_plumbd a "${lease[@]}"
pid_a=$PLUMBD_PID port_a=$METRICS_PORT
start_plumbd b "${lease[@]}"
pid_b=$PLUMBD_PID port_b=$METRICS_PORT
t_ok "one of two replicas leads" wait_for 20 bash -c "[[ \$(curl -s http://127.0.0.1:$port_a/metrics | awk '/^plumb_leader / {print \$2}') == 1 || \$(curl -s http://127.0.0.1:$port_b/metrics | awk '/^plumb_leader / {print \$2}') == 1 ]]"

# 1. The first commit walks the waves.
v1=$(release v1)
gitsync 6s Halt
t_ok "1 the canary gets v1" wait_for 60 version_is c2 v1
t_ok "1 wave canary bakes" wait_for 60 wave_is canary Baking
t_eq "1 eu has nothing while the canary bakes" "$(version c3)/$(version c4)" "/"
t_match "1 c3 waits for its wave" "$(gs_jq app '.status.clusters[] | select(.name == "c3") | .message')" "waiting for its wave eu"
t_ok "1 c3 gets v1 after the bake" wait_for 60 version_is c3 v1
t_ok "1 then c4" wait_for 60 version_is c4 v1
t_ok "1 the rollout succeeds" wait_for 60 ro_is state Succeeded
c3_ready=$(available_at c3) c4_applied=$(applied_at c4)
t_ok "1 maxUnavailable 1: c4 applied ($c4_applied) no earlier than c3 was available ($c3_ready)" \
	test -n "$c3_ready" -a -n "$c4_applied" -a ! "$c4_applied" \< "$c3_ready"
t_eq "1 status names each cluster's wave" "$(gs_jq app '[.status.clusters[] | "\(.name)=\(.wave)"] | join(",")')" "c2=canary,c3=eu,c4=eu"
t_ok "1 WaveSucceeded Events" test "$(events_with WaveSucceeded)" -ge 1

# 2. A good commit: eu stays at v1 until the canary is healthy and baked.
v2=$(release v2)
kc c1 -n "$NS" annotate gitsync app plumb.dev/requested-at="$(date +%s%N)" --overwrite >/dev/null
t_ok "2 the canary gets v2" wait_for 60 version_is c2 v2
t0=$SECONDS
t_eq "2 eu is still at v1" "$(version c3)/$(version c4)" "v1/v1"
t_ok "2 c3 gets v2" wait_for 90 version_is c3 v2
t_ok "2 not before the canary was healthy and baked 6 s (took $((SECONDS - t0)) s)" test $((SECONDS - t0)) -ge 5
t_ok "2 the rollout of v2 succeeds" wait_for 90 ro_is state Succeeded
t_eq "2 at v2 everywhere" "$(ro commit)/$(version c2)/$(version c3)/$(version c4)" "$v2/v2/v2/v2"
t_eq "2 the previous good commit is v1" "$(ro previousCommit)" "$v1"
t_eq "2 Ready" "$(gs_jq app '.status.conditions[] | select(.type == "Ready") | .status')" True

# 3. Paused: a commit moves nowhere; resumed, it goes through.
kc c1 -n "$NS" annotate gitsync app plumb.dev/rollout-paused=true --overwrite >/dev/null
v3=$(release v3)
kc c1 -n "$NS" annotate gitsync app plumb.dev/requested-at="$(date +%s%N)" --overwrite >/dev/null
t_ok "3 paused" wait_for 30 ro_is state Paused
t_eq "3 paused: the rollout is about v3" "$(ro commit)" "$v3"
sleep 5
t_eq "3 paused: nothing moved in 5 s" "$(version c2)/$(version c3)/$(version c4)" "v2/v2/v2"
kc c1 -n "$NS" annotate gitsync app plumb.dev/rollout-paused- >/dev/null
t_ok "3 resumed: v3 goes through" wait_for 120 ro_is state Succeeded
t_eq "3 at v3 everywhere" "$(version c2)/$(version c3)/$(version c4)" "v3/v3/v3"

# 4. A commit whose pods fail halts at the canary.
v4=$(release v4 fail)
kc c1 -n "$NS" annotate gitsync app plumb.dev/requested-at="$(date +%s%N)" --overwrite >/dev/null
t_ok "4 the canary gets v4" wait_for 60 version_is c2 v4
t_ok "4 the rollout halts" wait_for 60 ro_is state Halted
t_eq "4 wave canary Failed" "$(wave canary state)" Failed
t_match "4 the message names the cluster and the Deployment" "$(ro message)" "wave canary failed in cluster c2: .*Deployment $TNS/web"
t_eq "4 c3 and c4 stay at v3" "$(version c3)/$(version c4)" "v3/v3"
t_eq "4 c2 Degraded" "$(cluster_state app c2)" Degraded
t_eq "4 Ready False" "$(gs_jq app '.status.conditions[] | select(.type == "Ready") | "\(.status)/\(.reason)"')" "False/HealthCheckFailed"
t_ok "4 a RolloutHalted Event" test "$(events_with RolloutHalted)" -ge 1
t_eq "4 metric plumb_rollout_halted 1 on the leader" "$( (is_leader "$port_a" && echo 10) || echo 01)" \
	"$(metric "$port_a" "plumb_rollout_halted{gitsync=\"$NS/app\"}")$(metric "$port_b" "plumb_rollout_halted{gitsync=\"$NS/app\"}")"
sleep 3
t_eq "4 still halted: c3 and c4 at v3" "$(ro state)/$(version c3)/$(version c4)" "Halted/v3/v3"
# Rollback: the failed wave gets the previous good commit back.
gitsync 6s Rollback
t_ok "4 Rollback: the canary is back at v3" wait_for 60 version_is c2 v3
t_ok "4 Rollback: its Deployment is the v3 one again" wait_for 60 template_is c2 v3
t_ok "4 Rollback: and Available" wait_for 60 bash -c "[[ \$('$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c2/kubeconfig' -n '$TNS' get deployment web -o jsonpath='{.status.availableReplicas}') == 1 ]]"
t_eq "4 Rollback: the rollout stays halted at v4" "$(ro state)/$(ro commit)" "Halted/$v4"
t_eq "4 Rollback: c3 and c4 untouched at v3" "$(version c3)/$(version c4)" "v3/v3"

# 5. kill -9 the leader 8 s into the 20 s bake of wave canary.
gitsync 20s Rollback
v5=$(release v5)
kc c1 -n "$NS" annotate gitsync app plumb.dev/requested-at="$(date +%s%N)" --overwrite >/dev/null
t_ok "5 wave canary of v5 bakes" wait_for 90 baking_at "$v5"
bake_started=$(wave canary bakeStartedAt)
bake_s=$(date -u -d "$bake_started" +%s)
while (($(date +%s) < bake_s + 8)); do sleep 0.2; done
if is_leader "$port_a"; then leader=$pid_a standby_port=$port_b; else leader=$pid_b standby_port=$port_a; fi
kill -9 "$leader"
t_ok "5 the standby leads" wait_for 40 is_leader "$standby_port"
took_over=$(date -u +%Y-%m-%dT%H:%M:%SZ)
t_eq "5 the new leader keeps the bake's start" "$(wave canary bakeStartedAt)" "$bake_started"
t_eq "5 eu still at v3 after the takeover" "$(version c3)/$(version c4)" "v3/v3"
t_ok "5 the new leader finishes the rollout" wait_for 120 ro_is state Succeeded
t_eq "5 at v5 everywhere" "$(version c2)/$(version c3)/$(version c4)" "v5/v5/v5"
c3_at=$(applied_at c3)
bake_end=$(date -u -d "@$((bake_s + 20))" +%Y-%m-%dT%H:%M:%SZ)
# a bake started again at the takeover (8 s in, plus the lease) would end 28 s in at the earliest
late=$(date -u -d "@$((bake_s + 27))" +%Y-%m-%dT%H:%M:%SZ)
t_ok "5 c3 got v5 ($c3_at) after the bake that started at $bake_started ended" test ! "$c3_at" \< "$bake_end"
t_ok "5 and before a bake restarted at the takeover ($took_over) would have ended ($late)" test "$c3_at" \< "$late"
t_eq "5 the rollout of v5 started once, not again on the new leader" \
	"$(grep -h '"reason":"RolloutStarted"' "$WORK"/plumbd-*.log | grep -c "${v5:0:12}")" 1
t_done
