#!/usr/bin/env bash
# A revision applies whole or not at all (DESIGN.md §4, invariants 2 and 8),
# end to end: plumbd against two real target clusters (c2, c3) and a real
# HTTPS Git server. A bad revision — a kind the target does not serve, a
# custom resource that breaks its CRD's schema, a namespace that does not
# exist — writes nothing and prunes nothing in that cluster (checked in the
# cluster and in its audit log), says file, line, object and reason in the
# status, and the fix goes in whole. A Secret written with stringData is
# owned as data: tampering is corrected, and its value shows up nowhere.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/tests/lib.sh"
source "$root/e2e/lib.sh"

TNS=$NS-app
GROUP=$NS.example.com
OTHER=$NS-other.example.com     # a CRD only c3 has
SECRET_VALUE=s3cr3t-$RANDOM$RANDOM-value
SECRET_B64=$(printf '%s' "$SECRET_VALUE" | base64 -w0)
TAMPERED=t4mp3red-$RANDOM$RANDOM
TAMPERED_B64=$(printf '%s' "$TAMPERED" | base64 -w0)
PC=$BUILD/plumbctl
KC1=$PLUMB_TESTBED/clusters/c1/kubeconfig

atomic_cleanup() {
	for c in c2 c3; do
		kc "$c" delete namespace "$TNS" --wait=false >/dev/null 2>&1
	done
	kc c3 delete crd "gizmos.$OTHER" --wait=false >/dev/null 2>&1
	e2e_cleanup
}
trap atomic_cleanup EXIT

now() { date -u +%Y-%m-%dT%H:%M:%S.%6NZ; }
# Real writes (dry runs excluded) and dry runs plumbd sent to cluster C since T.
real_writes_since() { writes_since "$1" "$2" | grep -v 'dryRun=All' | grep -c . ; }
dry_runs_since() { writes_since "$1" "$2" | grep -c 'dryRun=All'; }
state_is() { [[ $(cluster_state app "$1") == "$2" ]]; }
sync_now() { kc c1 -n "$NS" annotate gitsync app plumb.dev/requested-at="$(date +%s%N)" --overwrite >/dev/null; }
cluster_msg() { gs_jq app ".status.clusters[] | select(.name == \"$1\") | .message"; }
cond() { gs_jq app ".status.conditions[] | select(.type == \"$1\") | .$2"; }

register_cluster c2 "env: prod"
register_cluster c3 "env: prod"
new_repo atomic

kc c3 apply -f - >/dev/null <<EOF
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gizmos.$OTHER}
spec:
  group: $OTHER
  names: {kind: Gizmo, plural: gizmos}
  scope: Namespaced
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
EOF

mkdir -p "$WORKTREE/deploy"
cat >"$WORKTREE/deploy/00-namespace.yaml" <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $TNS}
EOF
write_widget_crd "$WORKTREE/deploy/crd.yaml" "$GROUP"
cat >"$WORKTREE/deploy/widget.yaml" <<EOF
apiVersion: $GROUP/v1
kind: Widget
metadata: {name: w1, namespace: $TNS}
spec: {size: 3}
EOF
cat >"$WORKTREE/deploy/config.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: $TNS}
data: {LOG_LEVEL: info}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: old, namespace: $TNS}
data: {keep: "no"}
EOF
cat >"$WORKTREE/deploy/secret.yaml" <<EOF
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: $TNS}
type: Opaque
stringData:
  password: $SECRET_VALUE
EOF
cat >"$WORKTREE/deploy/app.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: $TNS}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.example.com/web:1.0
        ports: [{containerPort: 8080}]
        resources: {requests: {cpu: 100m, memory: 64Mi}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: $TNS}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
EOF
c1_id=$(commit "first revision")

apply_gitsync app deploy 10m "targets: {clusterSelector: {matchLabels: {env: prod}}}" "debounce: 200ms"
start_plumbd main

t_ok "1 converges in both targets" wait_for 40 synced_at app "$c1_id"
t_eq "1 stringData stored as data" "$SECRET_VALUE" "$(kc c2 -n "$TNS" get secret creds -o jsonpath='{.data.password}' | base64 -d)"
t_eq "1 plumb owns data.password" 1 "$(kc c2 -n "$TNS" get secret creds --show-managed-fields -o json |
	jq '[.metadata.managedFields[] | select(.manager == "plumb") | .fieldsV1["f:data"]["f:password"] // empty] | length')"

# 2. Steady state over CRDs, CRs, Secrets, Deployments and Services: 30 s,
#    zero writes and zero dry runs in either target.
sleep 2
t0=$(now)
sleep 30
t_eq "2 steady state: no write in c2" 0 "$(writes_since c2 "$t0" | grep -c .)"
t_eq "2 steady state: no write in c3" 0 "$(writes_since c3 "$t0" | grep -c .)"
t_eq "2 steady state: no dry run in c2" 0 "$(dry_runs_since c2 "$t0")"

# 3. The Secret: a tampered value is corrected like any other field and
#    reported by path; the value is nowhere plumb writes or prints.
kc c2 -n "$TNS" patch secret creds --field-manager=e2e-editor --type=merge \
	-p "{\"data\":{\"password\":\"$TAMPERED_B64\"}}" >/dev/null
t_ok "3 tampered Secret corrected" wait_for 5 bash -c "[[ \$('$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c2/kubeconfig' -n '$TNS' get secret creds -o jsonpath='{.data.password}') == '$SECRET_B64' ]]"
events=$(kc c1 -n "$NS" get events.events.k8s.io -o json)
t_ok "3 correction event names the path" grep -q 'Secret .*creds (data.password by e2e-editor)' <<<"$(jq -r '.items[].note' <<<"$events")"
# a changed value previewed from the worktree, uncommitted
sed -i "s/password: .*/password: next-$SECRET_VALUE/" "$WORKTREE/deploy/secret.yaml"
diff_out=$("$PC" diff "$WORKTREE" --gitsync app --cluster c2 -n "$NS" --kubeconfig "$KC1" 2>&1)
t_ok "3 plumbctl diff shows the Secret changed" grep -q 'updated Secret' <<<"$diff_out"
t_ok "3 plumbctl diff masks before and after" bash -c "grep -qF '*** (before)' <<<\"\$1\" && grep -qF '*** (after)' <<<\"\$1\"" _ "$diff_out"
git -C "$WORKTREE" checkout -q deploy/secret.yaml
everything="$(cat "$WORK"/plumbd-*.log)
$(kc c1 -n "$NS" get gitsync app -o json)
$events
$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics")
$(kc c2 -n plumb-system get configmaps -o json)
$diff_out"
for v in "$SECRET_VALUE" "$SECRET_B64" "$TAMPERED" "$TAMPERED_B64"; do
	t_eq "3 a Secret value in no log, status, event, metric, inventory or diff (${v:0:6}…)" 0 "$(grep -cF -- "$v" <<<"$everything")"
done
t_ok "3 what was checked is not empty" bash -c "(( \$(wc -c <<<\"\$1\") > 10000 ))" _ "$everything"

# 4. A kind c2 and c3 do not serve, a changed ConfigMap and a removed one:
#    nothing moves in either cluster; the message says where and why.
{
	echo "# a typo in the group"
	for i in 2 3 4 5 6 7 8 9; do
		printf 'apiVersion: %s.typo/v1\nkind: Widget\nmetadata: {name: w%s, namespace: %s}\n---\n' "$GROUP" "$i" "$TNS"
	done
} >"$WORKTREE/deploy/typo.yaml"
sed -i 's/LOG_LEVEL: info/LOG_LEVEL: warn/' "$WORKTREE/deploy/config.yaml"
sed -i '/^---$/,$d' "$WORKTREE/deploy/config.yaml"
t0=$(now)
bad_id=$(commit "unknown kind")
sync_now
t_ok "4 c2 failed" wait_for 20 state_is c2 Failed
t_ok "4 c3 failed" wait_for 20 state_is c3 Failed
msg=$(cluster_msg c2)
t_ok "4 message names file and line" grep -q "deploy/typo.yaml:2: Widget $TNS/w2 ($GROUP.typo/v1)" <<<"$msg"
t_ok "4 message says why" grep -q "unknown kind" <<<"$msg"
t_ok "4 message says nothing was applied" grep -q "^8 objects failed validation, nothing applied or pruned: " <<<"$msg"
t_ok "4 message names the first three and counts the rest" grep -q "typo.yaml:6: Widget $TNS/w3 .*typo.yaml:10: Widget $TNS/w4 .*; and 5 more$" <<<"$msg"
t_ok "4 message stays bounded" test "${#msg}" -lt 2000
t_eq "4 Stalled" "True ValidationFailed" "$(cond Stalled status) $(cond Stalled reason)"
t_eq "4 not Ready" "False ValidationFailed" "$(cond Ready status) $(cond Ready reason)"
t_ok "4 Stalled message names the cluster and file" grep -q "deploy/typo.yaml:2" <<<"$(cond Stalled message)"
t_ok "4 a ValidationFailed event names the file" wait_for 5 bash -c "'$PLUMB_K8S_BIN/kubectl' --kubeconfig '$KC1' -n '$NS' get events.events.k8s.io -o json | jq -r '.items[] | select(.reason == \"ValidationFailed\") | .note' | grep -q 'deploy/typo.yaml:2'"
sleep 1
for c in c2 c3; do
	t_eq "4 $c: changed ConfigMap untouched" info "$(kc $c -n "$TNS" get cm settings -o jsonpath='{.data.LOG_LEVEL}')"
	t_eq "4 $c: removed ConfigMap not pruned" no "$(kc $c -n "$TNS" get cm old -o jsonpath='{.data.keep}')"
	t_eq "4 $c: zero writes in the audit log" 0 "$(real_writes_since $c "$t0")"
	t_ok "4 $c: dry runs in the audit log" test "$(dry_runs_since $c "$t0")" -gt 0
	t_eq "4 $c: still at the good commit" "$c1_id" "$(cluster_commit app $c)"
done

# 5. The fix goes in whole: applied and pruned.
rm "$WORKTREE/deploy/typo.yaml"
fix_id=$(commit "fix the kind")
sync_now
t_ok "5 fix synced in both" wait_for 30 synced_at app "$fix_id"
for c in c2 c3; do
	t_eq "5 $c: changed" warn "$(kc $c -n "$TNS" get cm settings -o jsonpath='{.data.LOG_LEVEL}')"
	t_fails "5 $c: pruned" NotFound kc $c -n "$TNS" get cm old
done
t_eq "5 stall cleared" "False True" "$(cond Stalled status) $(cond Ready status)"

# 6. A custom resource that breaks its CRD's schema, with a ConfigMap change.
sed -i 's/size: 3/size: huge/' "$WORKTREE/deploy/widget.yaml"
sed -i 's/LOG_LEVEL: warn/LOG_LEVEL: error/' "$WORKTREE/deploy/config.yaml"
t0=$(now)
commit "schema violation" >/dev/null
sync_now
t_ok "6 c2 failed" wait_for 20 state_is c2 Failed
msg=$(cluster_msg c2)
t_ok "6 message names file, object and field" grep -q "deploy/widget.yaml:1: Widget $TNS/w1 ($GROUP/v1): .*spec.size" <<<"$msg"
t_eq "6 ConfigMap untouched" warn "$(kc c2 -n "$TNS" get cm settings -o jsonpath='{.data.LOG_LEVEL}')"
t_eq "6 zero writes in c2" 0 "$(real_writes_since c2 "$t0")"
sed -i 's/size: huge/size: 4/' "$WORKTREE/deploy/widget.yaml"

# 7. A namespace that neither exists nor is in the revision.
cat >"$WORKTREE/deploy/lost.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: lost, namespace: $NS-nowhere}
data: {a: b}
EOF
t0=$(now)
commit "missing namespace" >/dev/null
sync_now
t_ok "7 c2 failed on the namespace" wait_for 20 bash -c "grep -q 'deploy/lost.yaml:1: ConfigMap $NS-nowhere/lost (v1): .*not found' <<<\"\$(kc() { '$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c1/kubeconfig' \"\$@\"; }; kc -n '$NS' get gitsync app -o json | jq -r '.status.clusters[] | select(.name == \"c2\") | .message')\""
t_eq "7 widget untouched" 3 "$(kc c2 -n "$TNS" get widgets.$GROUP w1 -o jsonpath='{.spec.size}')"
t_eq "7 ConfigMap untouched" warn "$(kc c2 -n "$TNS" get cm settings -o jsonpath='{.data.LOG_LEVEL}')"
t_eq "7 zero writes in c2" 0 "$(real_writes_since c2 "$t0")"
rm "$WORKTREE/deploy/lost.yaml"

# 8. A kind only c3 serves: c2 fails alone, c3 syncs the commit.
cat >"$WORKTREE/deploy/gizmo.yaml" <<EOF
apiVersion: $OTHER/v1
kind: Gizmo
metadata: {name: g1, namespace: $TNS}
spec: {colour: blue}
EOF
t0=$(now)
giz_id=$(commit "a gizmo")
sync_now
t_ok "8 c3 synced" wait_for 30 bash -c "[[ \$(kc() { '$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c1/kubeconfig' \"\$@\"; }; kc -n '$NS' get gitsync app -o json | jq -r '.status.clusters[] | select(.name == \"c3\") | .state + \" \" + .commit') == 'Synced $giz_id' ]]"
t_ok "8 c2 failed" wait_for 20 state_is c2 Failed
t_ok "8 c2 names the kind" grep -q "deploy/gizmo.yaml:1: Gizmo $TNS/g1 ($OTHER/v1): unknown kind" <<<"$(cluster_msg c2)"
t_eq "8 c3 has the gizmo and the fixes" "blue 4 error" "$(kc c3 -n "$TNS" get gizmos.$OTHER g1 -o jsonpath='{.spec.colour}') $(kc c3 -n "$TNS" get widgets.$GROUP w1 -o jsonpath='{.spec.size}') $(kc c3 -n "$TNS" get cm settings -o jsonpath='{.data.LOG_LEVEL}')"
t_eq "8 c2 untouched" "3 warn" "$(kc c2 -n "$TNS" get widgets.$GROUP w1 -o jsonpath='{.spec.size}') $(kc c2 -n "$TNS" get cm settings -o jsonpath='{.data.LOG_LEVEL}')"
t_eq "8 zero writes in c2" 0 "$(real_writes_since c2 "$t0")"
t_eq "8 status: one of two clusters synced" "1/2" "$(gs_jq app .status.summary.clusters)"

t_done
