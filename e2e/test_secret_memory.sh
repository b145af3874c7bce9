#!/usr/bin/env bash
# plumbd keeps only the Secrets a Cluster or GitSync references (and only the
# keys it reads): 500 unrelated Secrets of 100 KiB each in the namespace it
# watches must not move its memory. Measured from /proc/PID/status (VmRSS, and
# VmHWM: the peak) before and after, with a watch event on a referenced Secret
# as the barrier that proves plumbd received all 500 first.
#
#   SECRETS=500 SECRET_KIB=100 (env) change the load; MAX_GROWTH_KIB=5120.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/tests/lib.sh"
source "$root/e2e/lib.sh"

n=${SECRETS:-500}
kib=${SECRET_KIB:-100}
max=${MAX_GROWTH_KIB:-5120}
TNS=$NS-app
HOOK=hook-$RANDOM$RANDOM
# PLUMB_E2E_LOGS=DIR keeps plumbd's logs there.
keep_logs() { [[ -n ${PLUMB_E2E_LOGS:-} ]] && mkdir -p "$PLUMB_E2E_LOGS" && cp "$WORK"/plumbd-*.log "$PLUMB_E2E_LOGS/" 2>/dev/null; e2e_cleanup; }
trap keep_logs EXIT

register_cluster c2 "env: prod"
new_repo mem
webhook_secret hook "$HOOK"
write_app "$WORKTREE/deploy/app.yaml" "$TNS"
first=$(commit "first")
apply_gitsync web deploy 1h "targets: {clusterNames: [c2]}" "webhook: {secretRef: {name: hook}}"

# Under AddressSanitizer freed memory sits in its quarantine: RSS says nothing
# there, so only the behaviour is checked.
asan=0
grep -q __asan_init "$BUILD/plumbd" 2>/dev/null && asan=1
mem_ok() { # NAME DELTA_KIB
	if ((asan)); then
		echo "SKIP $1 ($2 KiB; RSS is not measured under AddressSanitizer)"
	else
		t_ok "$1 ($2 KiB)" test "$2" -lt "$max"
	fi
}
mem() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }   # PID VmRSS|VmHWM, KiB
# hook_ok TOKEN: a webhook signed with TOKEN is accepted (the Secret as plumbd has it).
hook_ok() {
	local body='{"ref":"refs/heads/main"}'
	[[ $(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$METRICS_PORT/hooks/$NS/web" \
		-H "X-Hub-Signature-256: sha256=$(hmac_sha256 "$1" "$body")" -d "$body") == 202 ]]
}

synced_one() { [[ $(cluster_state web c2) == Synced && $(cluster_commit web c2) == "$first" ]]; }
start_plumbd main
t_ok "synced" wait_for 30 synced_one
t_ok "webhook with the Secret's token" hook_ok "$HOOK"
# One Secret read for several things by many GitSyncs: git-auth gets a
# webhook token too, 40 suspended GitSyncs fetch with it, one verifies its
# webhooks with it. plumbd keeps every key any of them reads.
SHARED=shared-$RANDOM$RANDOM
kc c1 -n "$NS" patch secret git-auth --type merge -p "{\"stringData\":{\"token\":\"$SHARED\"}}" >/dev/null
for i in $(seq 1 40); do
	printf -- '---\napiVersion: plumb.dev/v1alpha1\nkind: GitSync\nmetadata: {name: extra-%d, namespace: %s}\nspec:\n  git: {url: %s, ref: {branch: main}, secretRef: {name: git-auth}}\n  targets: {clusterNames: [c2]}\n  suspend: true\n' "$i" "$NS" "$REPO_URL"
done | kc c1 apply -f - >/dev/null
kc c1 -n "$NS" patch gitsync extra-40 --type merge -p '{"spec":{"webhook":{"secretRef":{"name":"git-auth"}}}}' >/dev/null
shared_ok() {
	local body='{"ref":"refs/heads/main"}'
	[[ $(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$METRICS_PORT/hooks/$NS/extra-40" \
		-H "X-Hub-Signature-256: sha256=$(hmac_sha256 "$SHARED" "$body")" -d "$body") == 202 ]]
}
t_ok "a Secret shared by 41 GitSyncs keeps the webhook token too" wait_for 15 shared_ok
kc c1 -n "$NS" delete gitsync $(printf 'extra-%d ' $(seq 1 40)) >/dev/null

sleep 2
rss0=$(mem "$PLUMBD_PID" VmRSS) hwm0=$(mem "$PLUMBD_PID" VmHWM)

# 500 unrelated Secrets, 100 KiB of data each, in the watched namespace.
python3 - "$n" "$kib" "$NS" >"$WORK/secrets.json" <<-'EOF'
	import base64, json, os, sys
	n, kib, ns = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
	items = [{"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
	          "metadata": {"name": "unrelated-%04d" % i, "namespace": ns},
	          "data": {"blob": base64.b64encode(os.urandom(kib * 1024)).decode()}} for i in range(n)]
	json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout)
	EOF
t_ok "$n unrelated Secrets created" kc c1 create -f "$WORK/secrets.json"
t_eq "all there" "$n" "$(kc c1 -n "$NS" get secrets -o name | grep -c unrelated-)"
# The barrier: a new token in the referenced Secret, seen after the 500 (one watch stream).
HOOK2=hook2-$RANDOM$RANDOM
kc c1 -n "$NS" create secret generic hook --from-literal=token="$HOOK2" --dry-run=client -o yaml | kc c1 apply -f - >/dev/null 2>&1
t_ok "plumbd saw every Secret event (the new token works)" wait_for 60 hook_ok "$HOOK2"
t_fails "the old token no longer does" "" hook_ok "$HOOK"
sleep 2
rss1=$(mem "$PLUMBD_PID" VmRSS) hwm1=$(mem "$PLUMBD_PID" VmHWM)
echo "plumbd with $n unrelated ${kib} KiB Secrets (watch): VmRSS $rss0 -> $rss1 KiB ($((rss1 - rss0)) KiB), VmHWM $hwm0 -> $hwm1 KiB ($((hwm1 - hwm0)) KiB)"
mem_ok "VmRSS grew by less than $max KiB" $((rss1 - rss0))
mem_ok "VmHWM grew by less than $max KiB" $((hwm1 - hwm0))

# A fresh start lists the 500 (the relist path): compare with the first start.
kill -TERM "$PLUMBD_PID"
wait "$PLUMBD_PID"
start_plumbd again
t_ok "restarted plumbd has the referenced Secret" wait_for 30 hook_ok "$HOOK2"
sed -i 's/LOG_LEVEL: info/LOG_LEVEL: warn/' "$WORKTREE/deploy/app.yaml"
second=$(commit "second")
kc c1 -n "$NS" annotate gitsync web plumb.dev/requested-at="$(date +%s%N)" --overwrite >/dev/null
t_ok "and syncs with the Git and kubeconfig Secrets" wait_for 30 bash -c "[[ \$('$PLUMB_K8S_BIN/kubectl' --kubeconfig '$PLUMB_TESTBED/clusters/c2/kubeconfig' -n '$TNS' get cm settings -o jsonpath='{.data.LOG_LEVEL}') == warn ]]"
sleep 2
rss2=$(mem "$PLUMBD_PID" VmRSS) hwm2=$(mem "$PLUMBD_PID" VmHWM)
echo "plumbd started with $n unrelated ${kib} KiB Secrets present (list): VmRSS $rss2 KiB ($((rss2 - rss1)) vs the first run after them), VmHWM $hwm2 KiB ($((hwm2 - hwm0)) vs the first run before them)"
mem_ok "restart: VmRSS within $max KiB of the first run's" $((rss2 - rss1))
mem_ok "restart: VmHWM within $max KiB of the first run's before them" $((hwm2 - hwm0))

t_done
