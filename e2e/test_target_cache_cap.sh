#!/usr/bin/env bash
# A target's API server is untrusted input: what plumbd caches of one target
# is capped (--target-cache-max-objects, lowered here to 25). Target c3 holds
# 40 objects under plumb's label that Git never had (a broken or hostile
# server answering more than plumbd will keep): c3 must be Failed with the
# reason, c2 must keep syncing, and c3 recovers once it lists within the cap.
# Per GitSync (--gitsync-cache-max-objects, here 10): 15 objects in c2 carry
# GitSync "other"'s label: only "other" is Failed there, "web" keeps syncing.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/tests/lib.sh"
source "$root/e2e/lib.sh"

# PodTemplates: a kind no other test applies, so the counts in the shared
# test bed's targets are this test's own (plumbd watches only the kinds Git has).
TNS=default
ID=$(tr -dc a-z0-9 </dev/urandom | head -c 6)
CAP=25
GSCAP=10

register_cluster c2 "env: prod"
register_cluster c3 "env: prod"
new_repo cap
mkdir -p "$WORKTREE/deploy"
template() { # NAME VALUE [LABELS]
	local labels=${3:-}
	[[ -n $labels ]] || labels='{}'
	printf 'apiVersion: v1\nkind: PodTemplate\nmetadata: {name: %s, namespace: %s, labels: %s}\ntemplate:\n  metadata: {labels: {v: "%s"}}\n  spec: {containers: [{name: app, image: "app:%s"}]}\n' \
		"$1" "$TNS" "$labels" "$2" "$2"
}
template "settings-$ID" info >"$WORKTREE/deploy/app.yaml"
mkdir -p "$WORKTREE/other"
template "other-$ID" one >"$WORKTREE/other/app.yaml"
first=$(commit "first")

# 40 PodTemplates in c3 that plumbd's label selector matches.
for i in $(seq 1 40); do
	echo ---
	template "flood-$ID-$i" "$i" "{app.kubernetes.io/managed-by: plumb}"
done >"$WORK/flood.yaml"
t_ok "40 labelled PodTemplates in c3" kc c3 apply -f "$WORK/flood.yaml"
for i in $(seq 1 15); do
	echo ---
	template "mine-$ID-$i" "$i" "{app.kubernetes.io/managed-by: plumb, plumb.dev/gitsync: $NS.other}"
done >"$WORK/mine.yaml"
cleanup_cap() {
	kc c2 delete -f "$WORK/mine.yaml" --ignore-not-found >/dev/null 2>&1
	kc c2 -n "$TNS" delete podtemplate "settings-$ID" "other-$ID" --ignore-not-found >/dev/null 2>&1
	kc c3 -n "$TNS" delete podtemplate "settings-$ID" --ignore-not-found >/dev/null 2>&1
	kc c3 delete -f "$WORK/flood.yaml" --ignore-not-found >/dev/null 2>&1
	e2e_cleanup
}
trap cleanup_cap EXIT

apply_gitsync web deploy 1h "targets: {clusterSelector: {matchLabels: {env: prod}}}" "debounce: 200ms"
apply_gitsync other other 1h "targets: {clusterNames: [c2]}" "debounce: 200ms"

start_plumbd main --target-cache-max-objects=$CAP --gitsync-cache-max-objects=$GSCAP --target-cache-retry=5s
state_is() { [[ $(cluster_state web "$1") == "$2" ]]; }
synced_to() { [[ $(cluster_state web "$1") == Synced && $(cluster_commit web "$1") == "$2" ]]; }
t_ok "c2 synced" wait_for 30 synced_to c2 "$first"
t_ok "c3 Failed" wait_for 30 state_is c3 Failed
msg=$(gs_jq web '.status.clusters[] | select(.name == "c3") | .message')
t_ok "the message names the cap and its flag" grep -qE "more (objects )?than .*$CAP.*--target-cache-max-objects" <<<"$msg"
echo "c3: $msg"
t_eq "Ready is False" False "$(gs_jq web '.status.conditions[] | select(.type == "Ready") | .status')"
t_ok "logged once as over its cap" grep -q '"cluster over its cache cap; failing it"' "$WORK/plumbd-main.log"

# 15 objects in c2 with "other"'s label: "other" alone is Failed in c2.
other_state() { [[ $(kc c1 -n "$NS" get gitsync other -o json | jq -r '.status.clusters[]? | select(.name == "c2") | .state') == "$1" ]]; }
t_ok "other synced in c2" wait_for 20 other_state Synced
t_ok "15 objects labelled for other in c2" kc c2 apply -f "$WORK/mine.yaml"
t_ok "other Failed in c2" wait_for 20 other_state Failed
t_ok "its message names the per-GitSync cap" grep -q "more than plumbd caches for one GitSync (--gitsync-cache-max-objects $GSCAP)" \
	<<<"$(kc c1 -n "$NS" get gitsync other -o json | jq -r '.status.clusters[] | select(.name == "c2") | .message')"
t_ok "web still Synced in c2" synced_to c2 "$first"

# c2 keeps syncing while c3 is Failed.
template "settings-$ID" warn >"$WORKTREE/deploy/app.yaml"
second=$(commit "second")
kc c1 -n "$NS" annotate gitsync web plumb.dev/requested-at="$(date +%s%N)" --overwrite >/dev/null
applied() { [[ $(kc "$1" -n "$TNS" get podtemplate "settings-$ID" -o jsonpath='{.template.metadata.labels.v}') == "$2" ]]; }
t_ok "c2 applies the next commit" wait_for 20 applied c2 warn
t_ok "c3 still Failed" state_is c3 Failed
t_ok "plumbd still answers" curl -fsS "http://127.0.0.1:$HEALTH_PORT/readyz"

# Back within the cap: c3 is rebuilt (after --target-cache-retry) and syncs.
kc c3 delete -f "$WORK/flood.yaml" >/dev/null
t_ok "c3 recovers within the cap" wait_for 60 synced_to c3 "$second"
t_ok "c3 has the second commit" applied c3 warn

# The same past the cap through watch events (not a list): Failed at once.
kc c3 apply -f "$WORK/flood.yaml" >/dev/null
t_ok "c3 Failed again by watch events" wait_for 20 state_is c3 Failed
t_ok "the message names the cap" grep -q "more than $CAP objects plumbd would cache (--target-cache-max-objects)" \
	<<<"$(gs_jq web '.status.clusters[] | select(.name == "c3") | .message')"
t_ok "c2 still Synced" synced_to c2 "$second"

t_done
