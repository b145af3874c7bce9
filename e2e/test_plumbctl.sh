#!/usr/bin/env bash
# plumbctl's online commands (status, diff, sync, version) against a real
# plumbd, real clusters (c1 management, c2 and c3 targets) and a real HTTPS
# Git server holding a copy of examples/repo. Everything this test creates is
# its own: namespace $NS in c1, namespace $TNS in c2 and c3.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/tests/lib.sh"
source "$root/e2e/lib.sh"

TNS=$NS-shop
PC=$BUILD/plumbctl
KC1=$PLUMB_TESTBED/clusters/c1/kubeconfig
KC3=$PLUMB_TESTBED/clusters/c3/kubeconfig

ctl_cleanup() {
	for c in c2 c3; do
		kc "$c" delete namespace "$TNS" --wait=false >/dev/null 2>&1
	done
	e2e_cleanup
}
trap ctl_cleanup EXIT

# rc CMD…: prints the exit code of CMD (its output goes to $WORK/out).
rc() { "$@" >"$WORK/out" 2>&1; echo $?; }
out_has() { grep -qE -- "$1" "$WORK/out"; }

# ---- offline: help, version, usage errors --------------------------------------
t_ok "help lists the online commands" bash -c "'$PC' --help | grep -q '^  status' && '$PC' --help | grep -q '^  diff' && '$PC' --help | grep -q '^  sync' && '$PC' --help | grep -q '^  version'"
for cmd in status diff sync rollout version; do
	t_ok "$cmd --help exits 0 and documents exit codes" bash -c "'$PC' $cmd --help | grep -q 'Exit codes'"
done
t_ok "version --client needs no cluster" bash -c "'$PC' version --client --kubeconfig /nonexistent | grep -qE '^plumbctl [0-9]'"
t_eq "unknown flag is a usage error (2)" 2 "$(rc "$PC" status --bogus)"
t_eq "sync without a name is a usage error (2)" 2 "$(rc "$PC" sync --kubeconfig "$KC1")"
t_eq "diff --gitsync without --cluster is a usage error (2)" 2 "$(rc "$PC" diff --gitsync x --kubeconfig "$KC1")"
t_eq "missing kubeconfig file is a usage error (2)" 2 "$(rc "$PC" status --kubeconfig "$WORK/nope")"

# An apiserver that does not answer: a copy of c1's kubeconfig pointing at a closed port.
sed -E 's#server: https://127.0.0.1:[0-9]+#server: https://127.0.0.1:1#' "$KC1" >"$WORK/dead.kubeconfig"
t_eq "unreachable cluster exits 3" 3 "$(rc "$PC" status --kubeconfig "$WORK/dead.kubeconfig" -n "$NS")"
t_ok "unreachable cluster says what to check" out_has "is the cluster up"

t_ok "version shows the server version and the plumb API" bash -c "'$PC' version --kubeconfig '$KC1' | grep -q '^kubernetes v1\.' && '$PC' version --kubeconfig '$KC1' | grep -q 'plumb.dev/v1alpha1 served'"
# plumbd's version from its Deployment (the test bed runs no pods: the object is enough).
kc c1 -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: plumb-vtest
  labels: {app.kubernetes.io/name: plumb, app.kubernetes.io/component: controller, app.kubernetes.io/version: "9.9.9-vtest"}
spec:
  replicas: 2
  selector: {matchLabels: {app: plumb-vtest}}
  template:
    metadata: {labels: {app: plumb-vtest}}
    spec: {containers: [{name: plumbd, image: "example.com/plumbd:9.9.9-vtest"}]}
EOF
t_eq "version names plumbd's Deployment" 0 "$(rc "$PC" version --kubeconfig "$KC1")"
t_ok "with its version, image and ready replicas" out_has "^plumbd 9\\.9\\.9-vtest \\(Deployment $NS/plumb-vtest, image example\\.com/plumbd:9\\.9\\.9-vtest, 0/2 ready\\)$"
kc c1 -n "$NS" delete deployment plumb-vtest >/dev/null
t_eq "sync of a missing GitSync exits 3" 3 "$(rc "$PC" sync nosuch -n "$NS" --kubeconfig "$KC1")"
t_ok "missing GitSync says how to list them" out_has 'not found in namespace .*plumbctl status -A'

# ---- set-up: the example repository for two clusters --------------------------------
register_cluster c2 "env: staging" "region: eu"
register_cluster c3 "env: prod" "region: us"
new_repo shop
# examples/repo without its CRD and custom resources (the operator test covers
# those), moved to this run's own namespace.
cp -r "$root/examples/repo/." "$WORKTREE/"
rm -rf "$WORKTREE/crds" "$WORKTREE/widgets"
find "$WORKTREE" -name '*.yaml' -exec sed -i -E "s/^(  )?namespace: shop$/\1namespace: $TNS/; s/^  name: shop$/  name: $TNS/" {} +
sed -i -E "s/^  name: $TNS$/  name: shop/" "$WORKTREE/rbac.yaml"
C1=$(commit "shop: first version")
kc c1 -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: plumb.dev/v1alpha1
kind: GitSync
metadata: {name: shop}
spec:
  git: {url: "$REPO_URL", ref: {branch: main}, secretRef: {name: git-auth}, interval: 1h}
  targets: {clusterSelector: {matchExpressions: [{key: env, operator: In, values: [staging, prod]}]}}
  substitute: {TEAM: payments}
EOF
export KUBECONFIG=$KC1
start_plumbd main || exit 1

# ---- sync --wait, status ------------------------------------------------------------
t_eq "sync --wait converges (exit 0)" 0 "$(rc "$PC" sync shop -n "$NS" --wait --timeout 60s)"
t_ok "sync --wait ends with Ready=True" out_has "gitsync $NS/shop: Ready=True"
t_ok "sync --wait shows progress lines" out_has "fetched ${C1:0:12}"
t_eq "c2 got its cluster name by substitution" c2 "$(kc c2 -n "$TNS" get cm shop-config -o jsonpath='{.data.cluster}')"
t_eq "c2 got the staging settings (selector)" 1 "$(kc c2 -n "$TNS" get cm shop-env -o jsonpath='{.data.replicas}')"
t_eq "c3 got the prod settings (selector)" 3 "$(kc c3 -n "$TNS" get cm shop-env -o jsonpath='{.data.replicas}')"
t_eq "spec.substitute reached the cluster" payments "$(kc c3 -n "$TNS" get cm shop-config -o jsonpath='{.data.team}')"

"$PC" status -n "$NS" >"$WORK/status" 2>&1
t_ok "status has a header" grep -qE '^GITSYNC +CLUSTER +STATE +HEALTH +COMMIT +OBJECTS +DRIFTED +LAG +MESSAGE' "$WORK/status"
t_ok "status shows c2 Synced at the commit" grep -qE "^shop +c2 +Synced +Healthy +${C1:0:12} +[1-9]" "$WORK/status"
t_ok "status shows c3 Synced at the commit" grep -qE "^shop +c3 +Synced +Healthy +${C1:0:12} +[1-9]" "$WORK/status"
t_eq "status -o json: two clusters" "c2 Synced,c3 Synced" \
	"$("$PC" status shop -n "$NS" -o json | jq -r '[.clusters[] | .name + " " + .state] | join(",")')"
t_eq "status -o json: ready" "True" "$("$PC" status shop -n "$NS" -o json | jq -r .ready.status)"
t_eq "status -o json without a name is a list" 1 "$("$PC" status -n "$NS" -o json | jq length)"
t_ok "status -o yaml" bash -c "'$PC' status -n '$NS' -o yaml | grep -q 'state: Synced'"
t_ok "status: no WAVE column without spec.rollout" bash -c "! grep -q WAVE '$WORK/status'"
t_ok "status -A shows the namespace column" bash -c "'$PC' status -A | grep -qE '^$NS +shop +c2'"
t_eq "status of a missing GitSync exits 3" 3 "$(rc "$PC" status nosuch -n "$NS")"
t_eq "bad -o is a usage error" 2 "$(rc "$PC" status -n "$NS" -o xml)"

# ---- diff ---------------------------------------------------------------------------
t_eq "diff from Git: no differences (exit 0)" 0 "$(rc "$PC" diff --gitsync shop --cluster c3 -n "$NS" --cache-dir "$WORK/ctl-cache")"
t_ok "diff from Git names the commit" out_has "at ${C1:0:12} -> cluster c3"
sed -i 's/replicas: "3"/replicas: "5"/' "$WORKTREE/config/env-prod.yaml"
t_eq "diff of a local change: differences (exit 1)" 1 "$(rc "$PC" diff "$WORKTREE" --gitsync shop --cluster c3 -n "$NS")"
t_ok "diff shows the updated object" out_has "~ updated ConfigMap $TNS/shop-env"
t_ok "diff shows the unified diff" out_has '^\+  replicas: "5"'
t_ok "diff shows the old value" out_has '^-  replicas: "3"'
t_eq "diff wrote nothing" 3 "$(kc c3 -n "$TNS" get cm shop-env -o jsonpath='{.data.replicas}')"
t_eq "diff of the same change on c2: nothing (selector)" 0 "$(rc "$PC" diff "$WORKTREE" --gitsync shop --cluster c2 -n "$NS")"
# DIR mode: everything from flags, the target from --cluster-kubeconfig.
dirdiff() {
	"$PC" diff "$WORKTREE" --cluster-kubeconfig "$KC3" --cluster-name c3 --cluster-label env=prod \
		--cluster-label region=us --set TEAM=payments --owner "$NS/shop" "$@"
}
t_eq "diff DIR --cluster-kubeconfig sees the change" 1 "$(rc dirdiff)"
t_ok "diff DIR shows the change" out_has "~ updated ConfigMap $TNS/shop-env"
git -C "$WORKTREE" checkout -q config/env-prod.yaml
t_eq "diff DIR without changes (exit 0)" 0 "$(rc dirdiff)"
t_eq "diff DIR with another --set: differences" 1 "$(rc "$PC" diff "$WORKTREE" --cluster-kubeconfig "$KC3" --cluster-name c3 \
	--cluster-label env=prod --cluster-label region=us --set TEAM=search --owner "$NS/shop")"
t_ok "diff shows the substituted value" out_has '^\+  team: search'
t_eq "diff DIR under another owner: conflicts (exit 1)" 1 "$(rc "$PC" diff "$WORKTREE" --cluster-kubeconfig "$KC3" \
	--cluster-name c3 --cluster-label env=prod --cluster-label region=us --set TEAM=payments --owner "$NS/someone-else")"
t_ok "objects of another GitSync show as conflicts" out_has "conflict"
mv "$WORKTREE/rbac.yaml" "$WORK/rbac.yaml"
t_eq "diff of a deleted file: differences" 1 "$(rc "$PC" diff "$WORKTREE" --gitsync shop --cluster c3 -n "$NS")"
t_ok "deleted objects show as pruned" out_has "pruned ServiceAccount $TNS/shop"
mv "$WORK/rbac.yaml" "$WORKTREE/rbac.yaml"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata:\n  a: [unclosed\n' >"$WORKTREE/config/broken.yaml"
t_eq "diff of an invalid revision exits 5" 5 "$(rc "$PC" diff "$WORKTREE" --gitsync shop --cluster c3 -n "$NS")"
t_ok "the invalid revision is named by file and line" out_has '^config/broken.yaml:[0-9]+:[0-9]+:'
t_eq "diff against an unreachable target exits 3" 3 "$(rc "$PC" diff "$root/examples/repo" --cluster-kubeconfig "$WORK/dead.kubeconfig" --cluster-name x --cluster-label env=prod --cluster-label region=us)"
t_ok "unreachable target: the message says what to check" out_has "is the cluster up"
t_eq "diff of a missing Cluster exits 3" 3 "$(rc "$PC" diff --gitsync shop --cluster nosuch -n "$NS")"

# ---- a bad commit, then the fix -------------------------------------------------------
BAD=$(commit "shop: a typo")
t_eq "sync --wait on a bad commit exits 1" 1 "$(rc "$PC" sync shop -n "$NS" --wait --timeout 60s)"
t_ok "sync names file and line of the error" out_has "Ready=False \(InvalidRevision\).*config/broken.yaml:[0-9]+"
t_ok "status says why the GitSync is not Ready" bash -c "'$PC' status -n '$NS' | grep -qE '^shop: Ready=False \(InvalidRevision\): commit ${BAD:0:12}: config/broken.yaml:'"
t_ok "status keeps the clusters at the last good commit" bash -c "'$PC' status -n '$NS' | grep -qE '^shop +c3 +Synced +Healthy +${C1:0:12}'"
rm "$WORKTREE/config/broken.yaml"
sed -i 's/LOG_LEVEL: info/LOG_LEVEL: debug/' "$WORKTREE/config/shop.yaml"
C3=$(commit "shop: fix, debug logs")
t_eq "sync --wait after the fix exits 0" 0 "$(rc "$PC" sync shop -n "$NS" --wait --timeout 60s)"
t_ok "both clusters at the fix" bash -c "'$PC' status -n '$NS' | grep -cE '^shop +c[23] +Synced +Healthy +${C3:0:12}' | grep -qx 2"
t_eq "the fix is in c2" debug "$(kc c2 -n "$TNS" get cm shop-config -o jsonpath='{.data.LOG_LEVEL}')"

# ---- plumbd gone: sync --wait times out and says why ------------------------------------
kill "$PLUMBD_PID"
wait "$PLUMBD_PID" 2>/dev/null
t_eq "sync --wait without plumbd times out (exit 4)" 4 "$(rc "$PC" sync shop -n "$NS" --wait --timeout 2s)"
t_ok "the timeout asks whether plumbd runs" out_has "is plumbd running"
t_eq "sync without --wait only annotates (exit 0)" 0 "$(rc "$PC" sync shop -n "$NS")"
t_ok "the annotation is set" grep -q 'Z-' <<<"$(kc c1 -n "$NS" get gitsync shop -o jsonpath='{.metadata.annotations.plumb\.dev/requested-at}')"

t_done
