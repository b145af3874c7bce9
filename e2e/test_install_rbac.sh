#!/usr/bin/env bash
# plumbd with the RBAC its install grants, nothing more: the ServiceAccount,
# ClusterRole, Role and bindings of manifests/install/plumb.yaml (the chart's
# default render) applied to the management cluster c1, two plumbd replicas
# run with a token of that ServiceAccount (kubectl create token), as the
# Deployment runs them. Leader election, a sync to a target, a webhook that
# reaches the standby, drift correction, status and Events must all work, and
# c1's audit log must show no 403 for any request of plumbd's.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/tests/lib.sh"
source "$root/e2e/lib.sh"

id=$(tr -dc a-z0-9 </dev/urandom | head -c 6)
INS=$NS-plumb                    # the install's namespace (plumb-system in the file)
REL=plumb-$id                    # the install's object names ("plumb" in the file)
SA="system:serviceaccount:$INS:$REL"
TNS=$NS-app
render_path="$(bash "$root/hack/build-kustomize.sh"):$(bash "$root/hack/build-helm.sh")" ||
	{ echo "FAIL: could not build kustomize and helm"; exit 1; }
HOOK_SECRET=rbac-hook-$RANDOM$RANDOM
started=$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)

# The RBAC objects of the install file, moved to this run's namespace and names.
kc c1 create namespace "$INS" >/dev/null
install_rbac "$root/manifests/install/plumb.yaml"
t_eq "install RBAC objects" "ClusterRole ClusterRoleBinding Role RoleBinding ServiceAccount" \
	"$(python3 -c 'import sys, yaml; print(" ".join(sorted(d["kind"] for d in yaml.safe_load_all(open(sys.argv[1])))))' "$WORK/rbac.yaml")"
kc c1 apply -f "$WORK/rbac.yaml" >/dev/null
cleanup_rbac() {
	kc c1 delete -f "$WORK/rbac.yaml" --wait=false >/dev/null 2>&1
	kc c1 delete namespace "$INS" --wait=false >/dev/null 2>&1
	e2e_cleanup
}
trap cleanup_rbac EXIT

# A kubeconfig holding nothing but a token of the install's ServiceAccount.
sa_kubeconfig
t_eq "the token is the install's ServiceAccount" "$SA" "$(kk auth whoami -o jsonpath='{.status.userInfo.username}')"
t_fails "and no more: it cannot write GitSync specs" "no" kk auth can-i patch gitsyncs.plumb.dev -n "$NS"

# plumbd's flags as the install's Deployment gives them, with this run's names
# and loopback ports.
mapfile -t dargs < <(deployment_args "$root/manifests/install/plumb.yaml")
t_ok "the Deployment elects a leader" grep -qx -- --leader-elect <(printf '%s\n' "${dargs[@]}")

# start_replica NAME: plumbd as the Deployment's container would run it, with
# the ServiceAccount kubeconfig; sets PID_<NAME>, MPORT_<NAME>, HPORT_<NAME>, WPORT_<NAME>.
start_replica() {
	local name=$1 log="$WORK/plumbd-$1.log" pid
	# kustomize and helm in PATH, where the image has them and plumbd looks by default
	PATH="$render_path:$PATH" "$BUILD/plumbd" --kubeconfig "$kcfg" --namespace "$NS" "${dargs[@]//CACHE/$name}" >"$log" 2>&1 &
	pid=$!
	e2e_pids+=("$pid")
	wait_for 10 grep -q '"plumbd started"' "$log" || { tail -20 "$log"; return 1; }
	printf -v "PID_$name" %s "$pid"
	printf -v "MPORT_$name" %s "$(grep '"plumbd started"' "$log" | jq -r .metrics_port)"
	printf -v "HPORT_$name" %s "$(grep '"plumbd started"' "$log" | jq -r .health_port)"
	printf -v "WPORT_$name" %s "$(grep '"plumbd started"' "$log" | jq -r '.webhook_port // .metrics_port')"
}
leading() { [[ $(metric "$1" "plumb_leader ") == 1 ]]; }

# The tenant side, written with the admin kubeconfig: a target, a repo, a GitSync.
register_cluster c2 "env: prod"
new_repo rbac
webhook_secret hook "$HOOK_SECRET"
write_app "$WORKTREE/deploy/app.yaml" "$TNS"
first=$(commit "first")
apply_gitsync web deploy 1h "targets: {clusterNames: [c2]}" "webhook: {secretRef: {name: hook}}" "debounce: 200ms"

start_replica a
start_replica b
t_ok "both replicas ready" wait_for 15 bash -c "curl -fsS http://127.0.0.1:$HPORT_a/readyz && curl -fsS http://127.0.0.1:$HPORT_b/readyz"
t_ok "one leader" wait_for 15 bash -c "(( \$(curl -s http://127.0.0.1:$MPORT_a/metrics | awk '/^plumb_leader / {print \$2}') + \$(curl -s http://127.0.0.1:$MPORT_b/metrics | awk '/^plumb_leader / {print \$2}') == 1 ))"
if leading "$MPORT_a"; then
	leader=a standby=b
else
	leader=b standby=a
fi
lport=MPORT_$leader sport=MPORT_$standby swport=WPORT_$standby lpid=PID_$leader spid=PID_$standby
t_eq "the Lease names the leader" "$(grep '"plumbd started"' "$WORK/plumbd-$leader.log" | jq -r .identity)" \
	"$(kc c1 -n "$INS" get lease "$REL" -o jsonpath='{.spec.holderIdentity}')"

# The webhook port (--webhook-addr, from the Deployment's args) serves only /hooks.
t_ok "the Deployment serves webhooks on a port of their own" grep -q -- '^--webhook-addr=' <(printf '%s\n' "${dargs[@]}")
t_ok "webhook port differs from the metrics port" test "${!swport}" != "${!sport}"
t_eq "GET /metrics on the webhook port" 404 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${!swport}/metrics")"
t_eq "/hooks on the metrics port" 404 "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:${!sport}/hooks/$NS/web" -H "X-Gitlab-Token: $HOOK_SECRET" -d '{}')"
t_eq "GET /metrics on the metrics port" 200 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${!sport}/metrics")"

# Sync and status.
t_ok "first commit applied in c2" wait_for 30 bash -c "[[ \$(kc() { '$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c1/kubeconfig' \"\$@\"; }; kc -n '$NS' get gitsync web -o json | jq -r '.status.clusters[]? | select(.name == \"c2\") | .state + \" \" + .commit') == 'Synced $first' ]]"
t_eq "applied" info "$(kc c2 -n "$TNS" get cm settings -o jsonpath='{.data.LOG_LEVEL}')"
t_eq "Ready condition" True "$(gs_jq web '.status.conditions[] | select(.type == "Ready") | .status')"
t_eq "Cluster status" True "$(kc c1 -n "$NS" get cluster.plumb.dev c2 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')"

# A webhook delivered to the standby: acted on at once (the poll interval is 1 h).
sed -i 's/LOG_LEVEL: info/LOG_LEVEL: hooked/' "$WORKTREE/deploy/app.yaml"
hooked=$(commit "webhook to the standby")
body='{"ref":"refs/heads/main","after":"'$hooked'"}'
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:${!swport}/hooks/$NS/web" \
	-H "X-Hub-Signature-256: sha256=$(hmac_sha256 "$HOOK_SECRET" "$body")" -d "$body")
t_eq "standby accepts the delivery" 202 "$code"
t_ok "the standby passed it on" wait_for 5 grep -q '"webhook passed on to the leader"' "$WORK/plumbd-$standby.log"
t_ok "the leader applied the commit" wait_for 15 bash -c "[[ \$('$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c2/kubeconfig' -n '$TNS' get cm settings -o jsonpath='{.data.LOG_LEVEL}') == hooked ]]"
t_ok "status at the hooked commit" wait_for 10 bash -c "[[ \$('$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c1/kubeconfig' -n '$NS' get gitsync web -o json | jq -r '.status.clusters[] | select(.name == \"c2\") | .commit') == $hooked ]]"
t_ok "the standby wrote nothing but the hand-off" bash -c "! grep -E '\"(applied|cannot write status)\"' '$WORK/plumbd-$standby.log'"

# Drift correction, and an Event about it.
kc c2 -n "$TNS" patch cm settings --field-manager=rbac-editor --type=merge -p '{"data":{"LOG_LEVEL":"debug"}}' >/dev/null
t_ok "drift corrected" wait_for 10 bash -c "[[ \$('$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c2/kubeconfig' -n '$TNS' get cm settings -o jsonpath='{.data.LOG_LEVEL}') == hooked ]]"
t_ok "DriftCorrected Event" wait_for 10 bash -c "'$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c1/kubeconfig' -n '$NS' get events.events.k8s.io -o json | json_check '[.items[] | select(.reason == \"DriftCorrected\" and .regarding.name == \"web\")] | length > 0'"

# SIGTERM on the leader: it releases the Lease, the other replica takes over
# and acts on the next webhook itself.
kill -TERM "${!lpid}"
wait "${!lpid}"
t_eq "leader exits 0 on SIGTERM" 0 "$?"
t_ok "the standby takes over" wait_for 10 leading "${!sport}"
sed -i 's/LOG_LEVEL: hooked/LOG_LEVEL: after-failover/' "$WORKTREE/deploy/app.yaml"
after=$(commit "after failover")
body='{"ref":"refs/heads/main","after":"'$after'"}'
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:${!swport}/hooks/$NS/web" \
	-H "X-Hub-Signature-256: sha256=$(hmac_sha256 "$HOOK_SECRET" "$body")" -d "$body")
t_eq "new leader accepts the delivery" 202 "$code"
t_ok "new leader applied the commit" wait_for 15 bash -c "[[ \$('$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c2/kubeconfig' -n '$TNS' get cm settings -o jsonpath='{.data.LOG_LEVEL}') == after-failover ]]"

# A Kustomize overlay and a Helm chart, rendered and applied with the same RBAC.
mkdir -p "$WORKTREE/kz" "$WORKTREE/chart/templates"
cat >"$WORKTREE/kz/kustomization.yaml" <<EOF
namespace: $TNS
configMapGenerator:
- {name: kz-settings, literals: [MODE=kustomize]}
EOF
printf 'apiVersion: v2\nname: web\nversion: 0.1.0\n' >"$WORKTREE/chart/Chart.yaml"
cat >"$WORKTREE/chart/templates/cm.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata: {name: {{ .Release.Name }}-chart}
data: {kube: {{ .Capabilities.KubeVersion.Version | quote }}}
EOF
rendered=$(commit "a kustomize overlay and a helm chart")
apply_gitsync kz kz 1h "targets: {clusterNames: [c2]}"
apply_gitsync hm chart 1h "targets: {clusterNames: [c2]}" "targetNamespace: $TNS"
synced_c2() { [[ $(cluster_commit "$1" c2) == "$2" && $(cluster_state "$1" c2) == Synced ]]; }
t_ok "the kustomize GitSync syncs" wait_for 60 synced_c2 kz "$rendered"
t_ok "the helm GitSync syncs" wait_for 60 synced_c2 hm "$rendered"
t_eq "kustomize's generated ConfigMap applied" kustomize \
	"$(kc c2 -n "$TNS" get cm -o json | jq -r '.items[] | select(.metadata.name | startswith("kz-settings-")) | .data.MODE')"
t_eq "helm's ConfigMap applied, with c2's version" "$(kc c2 version -o json | jq -r .serverVersion.gitVersion)" \
	"$(kc c2 -n "$TNS" get cm hm-chart -o jsonpath='{.data.kube}')"

# Health, dependsOn and a rollout need nothing the install does not grant:
# wait for health, after the kustomize GitSync, in two waves.
mkdir -p "$WORKTREE/waves"
cat >"$WORKTREE/waves/cm.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: waves, namespace: $TNS}
data: {wave: "yes"}
EOF
waved=$(commit "a GitSync in waves")
apply_gitsync waves waves 1h "targets: {clusterNames: [c2]}" "wait: true" "dependsOn: [{name: kz}]" \
	"rollout: {waves: [{name: first, clusterSelector: {matchLabels: {env: prod}}}], bake: 1s}"
t_ok "wait, dependsOn and rollout: Synced and Healthy" wait_for 60 bash -c \
	"[[ \$('$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c1/kubeconfig' -n '$NS' get gitsync waves -o json | jq -r '.status.clusters[]? | select(.name == \"c2\") | .state + \" \" + .health + \" \" + .commit') == 'Synced Healthy $waved' ]]"
t_ok "the rollout succeeded" wait_for 30 bash -c "[[ \$('$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c1/kubeconfig' -n '$NS' get gitsync waves -o jsonpath='{.status.rollout.state}') == Succeeded ]]"
t_eq "applied" yes "$(kc c2 -n "$TNS" get cm waves -o jsonpath='{.data.wave}')"

# Webhooks are unauthenticated: deliveries for a GitSync whose webhook Secret
# does not exist are refused, and cost the API server a GET now and then,
# not one per delivery.
apply_gitsync nohook deploy 1h "targets: {clusterNames: [none]}" "webhook: {secretRef: {name: missing-$id}}" "suspend: true"
sleep 1
codes=$(for i in $(seq 1 30); do curl -s -o /dev/null -w '%{http_code}\n' -X POST "http://127.0.0.1:${!swport}/hooks/$NS/nohook" -H "X-Gitlab-Token: x" -d '{}'; done | sort | uniq -c | awk '{print $1 "x" $2}')
t_eq "30 deliveries without a Secret refused" "30x401" "$codes"
gets=$(jq -r --arg u "$SA" --arg n "missing-$id" 'select(.user.username == $u and .verb == "get" and .objectRef.resource == "secrets" and .objectRef.name == $n) | .auditID' "$PLUMB_TESTBED/clusters/c1/audit.log" | sort -u | wc -l)
t_ok "and cost at most 3 GETs of it ($gets)" test "$gets" -le 3 -a "$gets" -ge 1

# The audit log: plumbd's requests as the ServiceAccount, none refused.
audit() { jq -c --arg u "$SA" --arg since "$started" 'select(.user.username == $u and .stageTimestamp >= $since)' \
	"$PLUMB_TESTBED/clusters/c1/audit.log"; }
t_ok "the audit log has plumbd's requests" test "$(audit | wc -l)" -gt 20
t_ok "it wrote status, Events and its Lease as the ServiceAccount" bash -c "
	a=\$(jq -c --arg u '$SA' 'select(.user.username == \$u and (.responseStatus.code // 0) < 300) | .objectRef.resource + \"/\" + (.objectRef.subresource // \"\") + \" \" + .verb' '$PLUMB_TESTBED/clusters/c1/audit.log')
	grep -q '\"gitsyncs/status patch\"' <<<\"\$a\" && grep -q '\"events/ create\"' <<<\"\$a\" && grep -q '\"leases/ update\"' <<<\"\$a\""
t_eq "no request of plumbd's got a 403" "" \
	"$(audit | jq -r 'select(.responseStatus.code == 403) | "\(.verb) \(.requestURI)"' | sort | uniq -c)"
# (403 as a number of its own: a duration such as "0.403" is not one)
t_ok "no permission errors in the logs" bash -c "! grep -iE 'forbidden|(^|[^.0-9])403([^.0-9]|\$)' '$WORK'/plumbd-*.log"

t_done
