#!/usr/bin/env bash
# Health, spec.wait, spec.healthTimeout and spec.dependsOn, end to end, on a
# test bed of its own where workloads really roll out (hack/cluster.sh up 4
# --workloads: kube-controller-manager, kube-scheduler and kwok's fake nodes
# beside each kube-apiserver). c1 is the management cluster, c2..c4 targets.
#  - wait: a Deployment change is Progressing until KWOK's pods are Ready and
#    the Deployment Available, then Synced; a pod template that KWOK fails
#    (its chaos label) turns Degraded once healthTimeout passes, naming the
#    Deployment, with a HealthCheckFailed Event and the metric at -1; the fix
#    is Synced again.
#  - without wait the same unhealthy Deployment is Synced, health Degraded.
#  - dependsOn: the app GitSync (a custom resource) is applied in a cluster
#    only after the infra GitSync (its CRD and an operator Deployment) is
#    synced and healthy there; until then it is Pending naming infra.
#  - a dependsOn cycle stalls both GitSyncs with a message naming it and
#    applies nothing.
#  - at steady state, with health tracked, plumbd sends no writes.
#
# Test bed: workloads (hack/run-tests.sh runs it last and builds the bed's
# binaries in the background first)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/tests/lib.sh"

source "$root/e2e/workloads.sh"
workloads_bed 4 || exit 1
source "$root/e2e/lib.sh"

TNS=$NS-app
GROUP=$NS.example.com
FAIL_LABEL=pod-container-running-failed.stage.kwok.x-k8s.io

register_cluster c2 "canary: \"true\""
register_cluster c3 "region: eu"
register_cluster c4 "region: us"
new_repo health

# deployment FILE NAME NAMESPACE [fail]: a Deployment of 2 replicas that is
# Available 3 s after its pods are Ready; with fail, KWOK fails its pods.
deployment() {
	mkdir -p "$(dirname "$1")"
	cat >"$1" <<-EOF
		apiVersion: apps/v1
		kind: Deployment
		metadata: {name: $2, namespace: $3}
		spec:
		  replicas: 2
		  minReadySeconds: 3
		  selector: {matchLabels: {app: $2}}
		  template:
		    metadata:
		      labels: {app: $2${4:+, $FAIL_LABEL: \"true\"}}
		    spec:
		      containers: [{name: main, image: "registry.invalid/$2:1"}]
	EOF
}

# t_match NAME STRING REGEX; t_not NAME CMD…: CMD must fail.
t_match() { if [[ $2 =~ $3 ]]; then t_ok "$1" true; else t_eq "$1" "/$3/" "$2"; fi; }
t_not() { local n=$1; shift; if "$@" >/dev/null 2>&1; then t_eq "$n" "it fails" "it succeeded: $*"; else t_ok "$n" true; fi; }
state_of() { cluster_state "$1" "$2"; }
health_of() { gs_jq "$1" ".status.clusters[]? | select(.name == \"$2\") | .health"; }
state_is() { [[ $(state_of "$1" "$2") == "$3" ]]; }
health_is() { [[ $(health_of "$1" "$2") == "$3" ]]; }
cond() { gs_jq "$1" ".status.conditions[] | select(.type == \"$2\") | .$3"; }
available() { # CLUSTER NS NAME: the Deployment's Available condition is True
	[[ $(kc "$1" -n "$2" get deployment "$3" -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null) == True ]]
}

mkdir -p "$WORKTREE/app"
cat >"$WORKTREE/app/ns.yaml" <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $TNS}
EOF
deployment "$WORKTREE/app/web.yaml" web "$TNS"
c1=$(commit "web")

start_plumbd main
apply_gitsync web app 10s "targets: {clusterNames: [c2]}" "wait: true" "healthTimeout: 15s" "debounce: 100ms"

# Sample the state every 0.2 s until Synced: Progressing must come first,
# and by the time it says Synced the Deployment must be Available.
seen=""
end=$((SECONDS + 90))
while ((SECONDS < end)); do
	s=$(state_of web c2)
	[[ -n $s && $s != "${seen##* }" ]] && seen="$seen $s"
	[[ $s == Synced ]] && break
	sleep 0.2
done
t_match "wait: Progressing, then Synced" "$seen" "Progressing.* Synced$"
t_ok "wait: once Synced, the Deployment is Available in c2" available c2 "$TNS" web
t_eq "wait: health Healthy" "$(health_of web c2)" Healthy
t_eq "wait: Ready True, reason Synced" "$(cond web Ready status)/$(cond web Ready reason)" "True/Synced"
t_eq "wait: the commit is recorded" "$(cluster_commit web c2)" "$c1"
t_eq "metric plumb_cluster_health 1" "$(metric "$METRICS_PORT" "plumb_cluster_health{gitsync=\"$NS/web\",cluster=\"c2\"}")" 1
t_ok "a healthy log line with the seconds it took" grep -q '"msg":"healthy".*"cluster":"c2"' "$WORK/plumbd-main.log"
hist=$(metric "$METRICS_PORT" "plumb_time_to_healthy_seconds_count{cluster=\"c2\"}")
t_ok "the time-to-healthy histogram has an observation" test "$hist" -ge 1

# A pod template KWOK fails: Progressing, then Degraded once 15 s passed.
deployment "$WORKTREE/app/web.yaml" web "$TNS" fail
c2=$(commit "web: pods that fail")
kc c1 -n "$NS" annotate gitsync web plumb.dev/requested-at="$(date +%s%N)" --overwrite >/dev/null
t_ok "bad image: Progressing first" wait_for 30 state_is web c2 Progressing
applied_at=$SECONDS
t_ok "bad image: the new commit is applied" test "$(cluster_commit web c2)" = "$c2"
t_ok "bad image: Degraded after healthTimeout" wait_for 60 state_is web c2 Degraded
took=$((SECONDS - applied_at))
t_ok "bad image: not Degraded before the 15 s healthTimeout (took ${took}s)" test "$took" -ge 12
msg=$(gs_jq web '.status.clusters[] | select(.name == "c2") | .message')
t_match "bad image: the message names the Deployment" "$msg" "Deployment $TNS/web: "
t_match "bad image: and the timeout" "$msg" "after 15s \\(spec.healthTimeout\\)"
t_eq "bad image: unhealthy lists it" \
	"$(gs_jq web '.status.clusters[] | select(.name == "c2") | .unhealthy.objects[0] | "\(.kind) \(.namespace)/\(.name)"')" \
	"Deployment $TNS/web"
t_eq "bad image: Ready False, HealthCheckFailed" "$(cond web Ready status)/$(cond web Ready reason)" "False/HealthCheckFailed"
t_eq "metric plumb_cluster_health -1" "$(metric "$METRICS_PORT" "plumb_cluster_health{gitsync=\"$NS/web\",cluster=\"c2\"}")" -1
t_ok "a HealthCheckFailed Event" wait_for 10 bash -c \
	"'$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c1/kubeconfig' -n '$NS' get events \
	--field-selector reason=HealthCheckFailed -o name | grep -q ."

# The fix rolls out and is Synced again.
deployment "$WORKTREE/app/web.yaml" web "$TNS"
c3=$(commit "web: fixed")
kc c1 -n "$NS" annotate gitsync web plumb.dev/requested-at="$(date +%s%N)" --overwrite >/dev/null
t_ok "fix: Synced" wait_for 90 state_is web c2 Synced
t_eq "fix: at the fixed commit" "$(cluster_commit web c2)" "$c3"
t_ok "fix: the Deployment is Available" available c2 "$TNS" web

# Without wait: Synced as soon as applied; health says what it is.
mkdir -p "$WORKTREE/nowait"
cat >"$WORKTREE/nowait/ns.yaml" <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $TNS-nowait}
EOF
deployment "$WORKTREE/nowait/bad.yaml" bad "$TNS-nowait" fail
commit "nowait" >/dev/null
apply_gitsync nowait nowait 10s "targets: {clusterNames: [c3]}" "healthTimeout: 5s"
t_ok "no wait: Synced" wait_for 60 state_is nowait c3 Synced
t_ok "no wait: health Degraded once 5 s passed" wait_for 60 health_is nowait c3 Degraded
t_eq "no wait: still Synced, Ready True" "$(state_of nowait c3)/$(cond nowait Ready status)" "Synced/True"

# dependsOn: infra (a CRD and an operator Deployment) before app (a custom
# resource of that CRD), in c4.
mkdir -p "$WORKTREE/infra" "$WORKTREE/cr"
cat >"$WORKTREE/infra/ns.yaml" <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $TNS-infra}
EOF
write_widget_crd "$WORKTREE/infra/crd.yaml" "$GROUP"
deployment "$WORKTREE/infra/operator.yaml" operator "$TNS-infra"
cat >"$WORKTREE/cr/widget.yaml" <<EOF
apiVersion: $GROUP/v1
kind: Widget
metadata: {name: w1, namespace: $TNS-infra}
spec: {size: 3}
EOF
commit "infra and cr" >/dev/null
# the dependent first: it must wait for infra, which does not exist yet
apply_gitsync cr cr 10s "targets: {clusterNames: [c4]}" "dependsOn: [{name: infra}]"
t_ok "dependsOn: Pending while infra does not exist" wait_for 30 state_is cr c4 Pending
t_match "dependsOn: the message names infra" \
	"$(gs_jq cr '.status.clusters[] | select(.name == "c4") | .message')" "waiting for GitSync $NS/infra .*no such GitSync"
apply_gitsync infra infra 10s "targets: {clusterNames: [c4]}" "wait: true"
t_ok "dependsOn: infra Synced (healthy)" wait_for 90 state_is infra c4 Synced
t_ok "dependsOn: then cr Synced" wait_for 60 state_is cr c4 Synced
avail_at=$(kc c4 -n "$TNS-infra" get deployment operator -o jsonpath='{.status.conditions[?(@.type=="Available")].lastTransitionTime}')
created_at=$(kc c4 -n "$TNS-infra" get widget.$GROUP w1 -o jsonpath='{.metadata.creationTimestamp}')
t_ok "dependsOn: the Widget was created no earlier than the operator became Available ($avail_at <= $created_at)" \
	test -n "$avail_at" -a -n "$created_at" -a ! "$created_at" \< "$avail_at"
t_ok "dependsOn: the log says cr waited for infra" grep -q '"msg":"waiting for a dependency".*infra' "$WORK/plumbd-main.log"

# A cycle: both stall, nothing applied.
mkdir -p "$WORKTREE/cyc"
cat >"$WORKTREE/cyc/cm.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: cyc, namespace: $TNS-infra}
EOF
commit "cycle" >/dev/null
apply_gitsync cyc-a cyc 10s "targets: {clusterNames: [c4]}" "dependsOn: [{name: cyc-b}]"
apply_gitsync cyc-b cyc 10s "targets: {clusterNames: [c4]}" "dependsOn: [{name: cyc-a}]"
stalled() { [[ $(cond "$1" Stalled reason) == DependencyCycle ]]; }
t_ok "cycle: cyc-a stalls" wait_for 30 stalled cyc-a
t_ok "cycle: cyc-b stalls" wait_for 30 stalled cyc-b
t_match "cycle: the message names it" "$(cond cyc-a Stalled message)" "cycle: $NS/cyc-a -> $NS/cyc-b -> $NS/cyc-a"
t_not "cycle: nothing applied" kc c4 -n "$TNS-infra" get configmap cyc
kc c1 -n "$NS" delete gitsync cyc-a cyc-b >/dev/null

# Steady state with health tracked: no writes in 10 s.
sleep 3
since=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
sleep 10
for c in c2 c3 c4; do
	t_eq "steady state: no writes to $c" "$(writes_since "$c" "$since" | grep -c .)" 0
done
t_done
