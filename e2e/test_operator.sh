#!/usr/bin/env bash
# plumbd end to end: three real clusters (c1 management, c2 and c3 targets), a
# real HTTPS Git server, plumbd as a process. Each scenario of the operator
# issue asserts on GitSync status and on the objects in the clusters.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/tests/lib.sh"
source "$root/e2e/lib.sh"

TNS=$NS-app                      # where the objects go in the targets
GROUP=$NS.example.com            # a CRD group of this run's own
HOOK_SECRET=e2e-hook-$RANDOM$RANDOM

register_cluster c2 "env: prod" "region: eu"
register_cluster c3 "env: prod" "region: us"
new_repo config
webhook_secret hook "$HOOK_SECRET"

mkdir -p "$WORKTREE/deploy" "$WORKTREE/other"
cat >"$WORKTREE/deploy/00-namespace.yaml" <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: \${TNS}
EOF
write_widget_crd "$WORKTREE/deploy/crd.yaml" "$GROUP" "singular: widget"
cat >"$WORKTREE/deploy/widget.yaml" <<EOF
apiVersion: $GROUP/v1
kind: Widget
metadata:
  name: w1
  namespace: \${TNS}
spec: {size: 3}
EOF
cat >"$WORKTREE/deploy/settings.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: \${TNS}
data:
  LOG_LEVEL: info
  CLUSTER: \${CLUSTER_NAME}
  REGION: \${CLUSTER_LABEL_region}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: old
  namespace: \${TNS}
data: {keep: "no"}
EOF
c1_id=$(commit "first revision")

apply_gitsync web deploy 10m "targets: {clusterSelector: {matchLabels: {env: prod}}}" "substitute: {TNS: $TNS}" \
	"webhook: {secretRef: {name: hook}}" "debounce: 1s"

start_plumbd main

# 1. Both targets converge; status and columns say so.
t_ok "1 converges in both targets" wait_for 30 synced_at web "$c1_id"
t_eq "1 ready" True "$(gs_jq web '.status.conditions[] | select(.type=="Ready") | .status')"
t_eq "1 columns" "NAME READY COMMIT CLUSTERS DRIFTED AGE" "$(kc c1 -n "$NS" get gitsyncs | head -1 | tr -s ' ')"
t_eq "1 row" "web True ${c1_id:0:7} 2/2 0" "$(kc c1 -n "$NS" get gitsync web --no-headers | awk '{print $1, $2, $3, $4, $5}')"
t_eq "1 substituted in c2" "c2/eu" "$(kc c2 -n "$TNS" get cm settings -o jsonpath='{.data.CLUSTER}/{.data.REGION}')"
t_eq "1 substituted in c3" "c3/us" "$(kc c3 -n "$TNS" get cm settings -o jsonpath='{.data.CLUSTER}/{.data.REGION}')"
t_eq "1 custom resource applied" 3 "$(kc c3 -n "$TNS" get widgets.$GROUP w1 -o jsonpath='{.spec.size}')"
t_eq "1 ownership label" "$NS.web" "$(kc c2 -n "$TNS" get cm settings -o jsonpath='{.metadata.labels.plumb\.dev/gitsync}')"

# 2. A commit that adds, changes and removes objects.
sed -i 's/LOG_LEVEL: info/LOG_LEVEL: warn/' "$WORKTREE/deploy/settings.yaml"
sed -i '/^---$/,$d' "$WORKTREE/deploy/settings.yaml"   # drop the second document
cat >"$WORKTREE/deploy/added.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: added
  namespace: ${TNS}
data: {fresh: "yes"}
EOF
c2_id=$(commit "add, change, remove")
kc c1 -n "$NS" annotate gitsync web plumb.dev/requested-at="$(date +%s%N)" --overwrite >/dev/null
t_ok "2 new commit applied in both" wait_for 20 synced_at web "$c2_id"
for c in c2 c3; do
	t_eq "2 changed in $c" warn "$(kc $c -n "$TNS" get cm settings -o jsonpath='{.data.LOG_LEVEL}')"
	t_eq "2 added in $c" yes "$(kc $c -n "$TNS" get cm added -o jsonpath='{.data.fresh}')"
	t_fails "2 removed from $c" "NotFound" kc $c -n "$TNS" get cm old
done

# 3. Out-of-band edits: corrected under Correct, reported under Report.
before=$(metric "$METRICS_PORT" 'plumb_drift_corrections_total{cluster="c2"}')
kc c2 -n "$TNS" patch cm settings --field-manager=e2e-editor --type=merge -p '{"data":{"LOG_LEVEL":"debug"}}' >/dev/null
t_ok "3 drift corrected" wait_for 5 bash -c "[[ \$('$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c2/kubeconfig' -n '$TNS' get cm settings -o jsonpath='{.data.LOG_LEVEL}') == warn ]]"
t_ok "3 correction counted" wait_for 5 bash -c "(( \$(curl -s http://127.0.0.1:$METRICS_PORT/metrics | awk '/^plumb_drift_corrections_total\\{cluster=\"c2\"\\}/ {print \$2}') > $before ))"
t_ok "3 correction event" wait_for 5 bash -c "'$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c1/kubeconfig' -n '$NS' get events.events.k8s.io -o json | json_check '[.items[] | select(.reason == \"DriftCorrected\") | select(.note | contains(\"data.LOG_LEVEL by e2e-editor\"))] | length > 0'"
kc c1 -n "$NS" patch gitsync web --type=merge -p '{"spec":{"driftPolicy":"Report"}}' >/dev/null
wait_for 10 synced_at web "$c2_id"
kc c3 -n "$TNS" patch cm settings --field-manager=e2e-editor --type=merge -p '{"data":{"LOG_LEVEL":"trace"}}' >/dev/null
t_ok "3 drift reported" wait_for 5 bash -c "[[ \$(kc() { '$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c1/kubeconfig' \"\$@\"; }; kc -n '$NS' get gitsync web -o json | jq -r '.status.clusters[] | select(.name==\"c3\") | .state') == Drifted ]]"
t_eq "3 drifted field" "data.LOG_LEVEL" "$(gs_jq web '.status.clusters[] | select(.name=="c3") | .drifted.objects[0].fields[0]')"
t_eq "3 drifted by" "e2e-editor" "$(gs_jq web '.status.clusters[] | select(.name=="c3") | .drifted.objects[0].manager')"
t_eq "3 drifted column" 1 "$(kc c1 -n "$NS" get gitsync web --no-headers | awk '{print $5}')"
t_eq "3 Drifted condition" True "$(gs_jq web '.status.conditions[] | select(.type=="Drifted") | .status')"
sleep 1
t_eq "3 left alone under Report" trace "$(kc c3 -n "$TNS" get cm settings -o jsonpath='{.data.LOG_LEVEL}')"
kc c1 -n "$NS" patch gitsync web --type=merge -p '{"spec":{"driftPolicy":"Correct"}}' >/dev/null
t_ok "3 corrected once back to Correct" wait_for 10 bash -c "[[ \$('$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c3/kubeconfig' -n '$TNS' get cm settings -o jsonpath='{.data.LOG_LEVEL}') == warn ]]"
t_ok "3 synced again" wait_for 10 synced_at web "$c2_id"

# 4. A commit with a YAML error stalls, touches nothing, and the fix recovers.
cat >"$WORKTREE/deploy/broken.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: broken
  namespace: ${TNS}
data:
  a: b
   c: d
EOF
sed -i 's/LOG_LEVEL: warn/LOG_LEVEL: error/' "$WORKTREE/deploy/settings.yaml"
bad_id=$(commit "broken yaml")
kc c1 -n "$NS" annotate gitsync web plumb.dev/requested-at="$(date +%s%N)" --overwrite >/dev/null
t_ok "4 stalled" wait_for 10 bash -c "[[ \$('$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c1/kubeconfig' -n '$NS' get gitsync web -o jsonpath='{.status.conditions[?(@.type==\"Stalled\")].status}') == True ]]"
msg=$(gs_jq web '.status.conditions[] | select(.type=="Stalled") | .message')
t_ok "4 message names file and line" grep -q "deploy/broken.yaml:8:" <<<"$msg"
t_eq "4 last fetched is the bad commit" "$bad_id" "$(gs_jq web .status.lastFetchedCommit)"
t_eq "4 c2 untouched" warn "$(kc c2 -n "$TNS" get cm settings -o jsonpath='{.data.LOG_LEVEL}')"
t_eq "4 c3 untouched" warn "$(kc c3 -n "$TNS" get cm settings -o jsonpath='{.data.LOG_LEVEL}')"
t_eq "4 clusters still at the good commit" "$c2_id" "$(cluster_commit web c2)"
rm "$WORKTREE/deploy/broken.yaml"
fix_id=$(commit "fix yaml")
kc c1 -n "$NS" annotate gitsync web plumb.dev/requested-at="$(date +%s%N)" --overwrite >/dev/null
t_ok "4 recovered" wait_for 20 synced_at web "$fix_id"
t_eq "4 stall cleared" False "$(gs_jq web '.status.conditions[] | select(.type=="Stalled") | .status')"
t_eq "4 fix applied" error "$(kc c2 -n "$TNS" get cm settings -o jsonpath='{.data.LOG_LEVEL}')"

# 8. Webhooks: a signed delivery syncs well before the 10 minute poll; a bad one is refused.
sed -i 's/LOG_LEVEL: error/LOG_LEVEL: hooked/' "$WORKTREE/deploy/settings.yaml"
hook_id=$(commit "webhook commit")
body='{"ref":"refs/heads/main","after":"'$hook_id'"}'
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$METRICS_PORT/hooks/$NS/web" \
	-H "X-Hub-Signature-256: sha256=$(hmac_sha256 wrong-secret "$body")" -d "$body")
t_eq "8 bad signature refused" 401 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$METRICS_PORT/hooks/$NS/nope" \
	-H "X-Hub-Signature-256: sha256=$(hmac_sha256 "$HOOK_SECRET" "$body")" -d "$body")
t_eq "8 unknown gitsync looks the same" 401 "$code"
sleep 2
t_eq "8 nothing synced by a bad delivery" "$fix_id" "$(cluster_commit web c2)"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$METRICS_PORT/hooks/$NS/web" \
	-H "X-Hub-Signature-256: sha256=$(hmac_sha256 "$HOOK_SECRET" "$body")" -d "$body")
t_eq "8 good signature accepted" 202 "$code"
t_ok "8 synced after the webhook" wait_for 5 synced_at web "$hook_id"
sed -i 's/LOG_LEVEL: hooked/LOG_LEVEL: gitlab/' "$WORKTREE/deploy/settings.yaml"
gl_id=$(commit "gitlab webhook commit")
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$METRICS_PORT/hooks/$NS/web" \
	-H "X-Gitlab-Token: $HOOK_SECRET" -d '{}')
t_eq "8 gitlab token accepted" 202 "$code"
t_ok "8 synced after the gitlab webhook" wait_for 5 synced_at web "$gl_id"

# 7. A burst of 20 commits within 2 s, each with its webhook: far fewer reconciles.
before2=$(metric "$METRICS_PORT" 'plumb_reconcile_total{cluster="c2",result="success"}')
hook_pids=()
burst_start=$(date +%s%N)
for i in $(seq 1 20); do
	sed -i "s/^  LOG_LEVEL: .*/  LOG_LEVEL: burst-$i/" "$WORKTREE/deploy/settings.yaml"
	burst_id=$(commit "burst $i")
	curl -s -o /dev/null -X POST "http://127.0.0.1:$METRICS_PORT/hooks/$NS/web" -H "X-Gitlab-Token: $HOOK_SECRET" -d '{}' &
	hook_pids+=($!)
	sleep 0.05
done
wait "${hook_pids[@]}"
burst_ms=$((($(date +%s%N) - burst_start) / 1000000))
t_ok "7 final commit applied" wait_for 15 synced_at web "$burst_id"
t_eq "7 final value" burst-20 "$(kc c3 -n "$TNS" get cm settings -o jsonpath='{.data.LOG_LEVEL}')"
sleep 2
after2=$(metric "$METRICS_PORT" 'plumb_reconcile_total{cluster="c2",result="success"}')
reconciles=$((${after2%.*} - ${before2%.*}))
# debounce 1s: at most one run a second while the burst lasts, the first at
# once and one after the last trigger. On a loaded machine the 20 commits
# take longer than 2 s; the bound follows what the burst took (8 for <= 3 s).
bound=$(((burst_ms + 999) / 1000 + 5))
((bound < 20)) || bound=19
echo "    burst of 20 commits in ${burst_ms} ms: $reconciles reconciles of c2 (at most $bound)"
t_ok "7 far fewer than 20 reconciles ($reconciles)" test "$reconciles" -le "$bound"

# 5. One target down: it is Unreachable, the other keeps syncing; back up: converges.
bash "$root/hack/cluster.sh" stop-apiserver c3
sed -i "s/^  LOG_LEVEL: .*/  LOG_LEVEL: while-c3-down/" "$WORKTREE/deploy/settings.yaml"
down_id=$(commit "while c3 is down")
kc c1 -n "$NS" annotate gitsync web plumb.dev/requested-at="$(date +%s%N)" --overwrite >/dev/null
t_ok "5 c2 keeps syncing" wait_for 20 bash -c "source '$root/e2e/lib.sh' >/dev/null 2>&1 </dev/null; true; [[ \$('$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c1/kubeconfig' -n '$NS' get gitsync web -o json | jq -r '.status.clusters[] | select(.name==\"c2\") | .commit') == $down_id ]]"
t_ok "5 c3 unreachable" wait_for 40 bash -c "[[ \$('$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c1/kubeconfig' -n '$NS' get gitsync web -o json | jq -r '.status.clusters[] | select(.name==\"c3\") | .state') == Unreachable ]]"
t_ok "5 cluster c3 not ready" wait_for 10 bash -c "[[ \$('$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c1/kubeconfig' -n '$NS' get clusters.plumb.dev c3 -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}') == False ]]"
t_ok "5 plumbd still alive" kill -0 "$PLUMBD_PID"
bash "$root/hack/cluster.sh" start-apiserver c3
t_ok "5 c3 converges without a restart" wait_for 60 synced_at web "$down_id"
t_eq "5 value in c3" while-c3-down "$(kc c3 -n "$TNS" get cm settings -o jsonpath='{.data.LOG_LEVEL}')"

# 9. A rotated kubeconfig Secret takes effect without a restart; a revoked one shows Failed.
bash "$root/hack/cluster.sh" sign-client "$PLUMB_TESTBED/clusters/c2" rotated system:masters rotated
bash "$root/hack/cluster.sh" kubeconfig c2 rotated "$WORK/c2-rotated.kubeconfig"
kc c1 -n "$NS" create secret generic c2 --from-file=kubeconfig="$WORK/c2-rotated.kubeconfig" \
	--dry-run=client -o yaml | kc c1 apply -f - >/dev/null
sed -i "s/^  LOG_LEVEL: .*/  LOG_LEVEL: rotated/" "$WORKTREE/deploy/settings.yaml"
rot_id=$(commit "after rotation")
kc c1 -n "$NS" annotate gitsync web plumb.dev/requested-at="$(date +%s%N)" --overwrite >/dev/null
t_ok "9 synced with rotated credentials" wait_for 20 synced_at web "$rot_id"
t_ok "9 the new identity did the work" bash -c "jq -r 'select(.userAgent != null and (.userAgent|startswith(\"plumb/\"))) | .user.username' '$PLUMB_TESTBED/clusters/c2/audit.log' | grep -qx rotated"
bash "$root/hack/cluster.sh" sign-client "$PLUMB_TESTBED/clusters/c2" nobody "" nobody
bash "$root/hack/cluster.sh" kubeconfig c2 nobody "$WORK/c2-nobody.kubeconfig"
kc c1 -n "$NS" create secret generic c2 --from-file=kubeconfig="$WORK/c2-nobody.kubeconfig" \
	--dry-run=client -o yaml | kc c1 apply -f - >/dev/null
t_ok "9 revoked shows Failed" wait_for 20 bash -c "[[ \$('$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c1/kubeconfig' -n '$NS' get gitsync web -o json | jq -r '.status.clusters[] | select(.name==\"c2\") | .state') == Failed ]]"
t_ok "9 with the 403 message" bash -c "'$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c1/kubeconfig' -n '$NS' get gitsync web -o json | jq -r '.status.clusters[] | select(.name==\"c2\") | .message' | grep -q 403"
kc c1 -n "$NS" create secret generic c2 --from-file=kubeconfig="$PLUMB_TESTBED/clusters/c2/kubeconfig" \
	--dry-run=client -o yaml | kc c1 apply -f - >/dev/null
t_ok "9 restored credentials sync again" wait_for 20 synced_at web "$rot_id"

# 10. Steady state: 30 s with nothing changing, no write request from plumbd anywhere.
wait_for 10 synced_at web "$rot_id"
sleep 3
since=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
sleep 30
t_ok "10 plumbd alive through the steady state" kill -0 "$PLUMBD_PID"
t_ok "10 and still reading the clusters" wait_for 5 synced_at web "$rot_id"
for c in c1 c2 c3; do
	w=$(writes_since $c "$since")
	t_eq "10 no writes to $c in 30 s of steady state" "" "$w"
done

# 6. Two replicas: one leader; kill -9 moves leadership within the lease; SIGTERM at once.
kill "$PLUMBD_PID"
wait "$PLUMBD_PID"
t_eq "6 single replica exits 0 on SIGTERM" 0 "$?"
start_plumbd a --leader-elect --lease-namespace "$NS"
pid_a=$PLUMBD_PID port_a=$METRICS_PORT
start_plumbd b --leader-elect --lease-namespace "$NS"
pid_b=$PLUMBD_PID port_b=$METRICS_PORT
t_ok "6 one leader" wait_for 10 bash -c "(( \$(curl -s http://127.0.0.1:$port_a/metrics | awk '/^plumb_leader / {print \$2}') + \$(curl -s http://127.0.0.1:$port_b/metrics | awk '/^plumb_leader / {print \$2}') == 1 ))"
if [[ $(metric "$port_a" "plumb_leader ") == 1 ]]; then
	leader=$pid_a standby=$pid_b standby_port=$port_b standby_name=b
else
	leader=$pid_b standby=$pid_a standby_port=$port_a standby_name=a
fi
holder=$(kc c1 -n "$NS" get lease plumbd -o jsonpath='{.spec.holderIdentity}')
t_ok "6 lease held" test -n "$holder"
kill -9 "$leader"
sed -i "s/^  LOG_LEVEL: .*/  LOG_LEVEL: after-failover/" "$WORKTREE/deploy/settings.yaml"
fo_id=$(commit "after failover")
start=$SECONDS
t_ok "6 standby leads after kill -9 (within lease + reconcile)" wait_for 25 bash -c "[[ \$(curl -s http://127.0.0.1:$standby_port/metrics | awk '/^plumb_leader / {print \$2}') == 1 ]]"
echo "    takeover after kill -9: $((SECONDS - start)) s"
kc c1 -n "$NS" annotate gitsync web plumb.dev/requested-at="$(date +%s%N)" --overwrite >/dev/null
t_ok "6 new leader converges" wait_for 20 synced_at web "$fo_id"
start_plumbd c --leader-elect --lease-namespace "$NS"
pid_c=$PLUMBD_PID port_c=$METRICS_PORT
sleep 1
kill -TERM "$standby"
wait "$standby"
rc=$?
t_eq "6 SIGTERM leader exits 0" 0 "$rc"
start=$SECONDS
t_ok "6 standby takes over within a few seconds of SIGTERM" wait_for 6 bash -c "[[ \$(curl -s http://127.0.0.1:$port_c/metrics | awk '/^plumb_leader / {print \$2}') == 1 ]]"
echo "    takeover after SIGTERM: $((SECONDS - start)) s"
t_ok "6 lease released by $standby_name" grep -q '"released the lease"' "$WORK/plumbd-$standby_name.log"
kill "$pid_c"

t_ok "no secret data in logs" bash -c "! grep -h -e '$BASIC_PASSWORD' -e '$HOOK_SECRET' -e 'client-key-data' '$WORK'/plumbd-*.log"
t_done
