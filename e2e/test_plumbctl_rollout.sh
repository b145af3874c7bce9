#!/usr/bin/env bash
# plumbctl rollout (status, pause, resume, abort), the HEALTH and WAVE columns
# of plumbctl status and how sync --wait reads health and rollouts, against
# the real management cluster c1 and no plumbd: the test writes the status
# plumbd would write (through the status subresource, the CRD's own schema
# checking it) and reads back what plumbctl shows and the annotations it set.
# Everything it creates is in its own namespace $NS of c1.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/tests/lib.sh"
source "$root/e2e/lib.sh"

PC=$BUILD/plumbctl
export KUBECONFIG=$PLUMB_TESTBED/clusters/c1/kubeconfig

# rc CMD…: prints the exit code of CMD (its output goes to $WORK/out).
rc() { "$@" >"$WORK/out" 2>&1; echo $?; }
out_has() { grep -qE -- "$1" "$WORK/out"; }
# set_status GITSYNC JSON: merge-patches the GitSync's status as plumbd would.
set_status() { kc c1 -n "$NS" patch gitsync "$1" --subresource=status --type=merge -p "$2" >/dev/null; }
annotation() { # GITSYNC KEY: the annotation's value, "<none>" when it is not set
	kc c1 -n "$NS" get gitsync "$1" -o json | jq -r --arg k "$2" '.metadata.annotations[$k] // "<none>"'
}
gen() { kc c1 -n "$NS" get gitsync "$1" -o jsonpath='{.metadata.generation}'; }

OLD=$(printf old | sha1sum | cut -c1-40)
NEW=$(printf new | sha1sum | cut -c1-40)
T0=2026-12-01T10:00:00Z T1=2026-12-01T10:01:00Z T2=2026-12-01T10:11:00Z

# ---- set-up: three GitSyncs; only plumbctl and the apiserver are involved -----------------
new_repo web   # a repository nobody syncs: plumbd does not run here
apply_gitsync web "" 1h "targets: {clusterNames: [c2, c3, c4, c5]}" "wait: true" \
	"rollout: {bake: 10m, waves: [{name: canary, clusterSelector: {matchLabels: {ring: canary}}}, {name: prod, clusterSelector: {matchLabels: {env: prod}}, maxUnavailable: 1}]}"
apply_gitsync plain "" 1h "targets: {clusterNames: [c2]}"
apply_gitsync fresh "" 1h "targets: {clusterNames: [c2]}" "rollout: {waves: [{name: one}]}"
t_eq "three GitSyncs, two with spec.rollout" "fresh:1 plain:0 web:2" \
	"$(kc c1 -n "$NS" get gitsync -o json | jq -r '[.items[] | "\(.metadata.name):\(.spec.rollout.waves // [] | length)"] | sort | join(" ")')"

# web: wave canary done, prod under way (c3 applied, not yet healthy; c4 not
# admitted yet), (others) waiting.
ready_cond() { # STATUS REASON MESSAGE GENERATION
	jq -nc --arg s "$1" --arg r "$2" --arg m "$3" --argjson g "$4" \
		'{type: "Ready", status: $s, reason: $r, message: $m, observedGeneration: $g, lastTransitionTime: "2026-12-01T10:11:00Z"}'
}
WEB_STATUS=$(jq -nc --arg old "$OLD" --arg new "$NEW" --arg t0 $T0 --arg t1 $T1 --arg t2 $T2 \
	--argjson ready "$(ready_cond False Progressing "rollout of ${NEW:0:12}: wave prod in progress" "$(gen web)")" '{status: {
	observedGeneration: 1, lastFetchedCommit: $new,
	rollout: {commit: $new, previousCommit: $old, state: "Progressing", currentWave: "prod",
		message: "wave prod: 0 of 2 clusters ready", waves: [
		{name: "canary", state: "Succeeded", clusters: ["c2"], startedAt: $t0, bakeStartedAt: $t1, finishedAt: $t2},
		{name: "prod", state: "Progressing", clusters: ["c3", "c4"], startedAt: $t2},
		{name: "(others)", state: "Pending", clusters: ["c5"]}]},
	clusters: [
		{name: "c2", state: "Synced", health: "Healthy", wave: "canary", commit: $new, objects: 4},
		{name: "c3", state: "Progressing", health: "Progressing", wave: "prod", commit: $new, objects: 4,
			unhealthy: {count: 1, objects: [{kind: "Deployment", namespace: "shop", name: "web",
				state: "Progressing", message: "1 of 3 replicas updated"}]},
			message: "Deployment shop/web: 1 of 3 replicas updated"},
		{name: "c4", state: "Pending", wave: "prod", objects: 0},
		{name: "c5", state: "Synced", health: "Healthy", wave: "(others)", commit: $old, objects: 4}],
	conditions: [$ready]}}')
t_ok "the status of web is accepted by the CRD" set_status web "$WEB_STATUS"
t_ok "the status of plain is accepted by the CRD" set_status plain "$(jq -nc --arg c "$OLD" \
	--argjson ready "$(ready_cond True Synced "1 clusters synced" "$(gen plain)")" '{status: {
	observedGeneration: 1, lastFetchedCommit: $c,
	clusters: [{name: "c2", state: "Synced", health: "Healthy", commit: $c, objects: 2}], conditions: [$ready]}}')"

# ---- rollout status --------------------------------------------------------------------------
t_ok "help lists rollout" bash -c "'$PC' --help | grep -q '^  rollout status|pause|resume|abort NAME'"
t_ok "rollout --help documents exit codes" bash -c "'$PC' rollout --help | grep -q 'Exit codes'"
t_eq "rollout without a verb is a usage error (2)" 2 "$(rc "$PC" rollout)"
t_eq "rollout with an unknown verb is a usage error (2)" 2 "$(rc "$PC" rollout restart web -n "$NS")"
t_ok "  and names the verbs" out_has 'wants status, pause, resume or abort, got "restart"'
t_eq "rollout status without a name is a usage error (2)" 2 "$(rc "$PC" rollout status -n "$NS")"
t_eq "rollout pause -o json is a usage error (2)" 2 "$(rc "$PC" rollout pause web -n "$NS" -o json)"
t_eq "rollout status of a missing GitSync exits 3" 3 "$(rc "$PC" rollout status nosuch -n "$NS")"
t_ok "  and says how to list them" out_has 'GitSync "nosuch" not found in namespace .*plumbctl status -A'

t_eq "rollout status web exits 0" 0 "$(rc "$PC" rollout status web -n "$NS")"
t_ok "  names the GitSync" out_has "^GitSync: +$NS/web$"
t_ok "  the commit, short" out_has "^Commit: +${NEW:0:12}$"
t_ok "  the previous good commit" out_has "^Previous good: +${OLD:0:12}$"
t_ok "  the state" out_has '^State: +Progressing$'
t_ok "  the current wave" out_has '^Current wave: +prod$'
t_ok "  the message" out_has '^Message: +wave prod: 0 of 2 clusters ready$'
t_ok "  no pause or abort pending" bash -c "! grep -qE '^(Pause|Abort):' '$WORK/out'"
t_ok "  the waves' header" out_has '^NAME +STATE +CLUSTERS +STARTED +BAKE-STARTED +FINISHED$'
t_ok "  wave canary: succeeded, with its times" out_has "^canary +Succeeded +c2 +$T0 +$T1 +$T2$"
t_ok "  wave prod: progressing, two clusters, not baking" out_has "^prod +Progressing +c3,c4 +$T2 +- +-$"
t_ok "  the last wave (others)" out_has '^\(others\) +Pending +c5 +- +- +-$'
t_eq "  the waves in order" "canary prod (others)" "$(awk '/^NAME /{t=1; next} t {printf "%s%s", s, $1; s=" "}' "$WORK/out")"
t_eq "rollout status -o json is status.rollout as it is" \
	"$(kc c1 -n "$NS" get gitsync web -o json | jq -S .status.rollout)" \
	"$("$PC" rollout status web -n "$NS" -o json | jq -S .)"
t_ok "rollout status -o yaml" bash -c "'$PC' rollout status web -n '$NS' -o yaml | grep -qx 'currentWave: prod'"
t_eq "rollout status of a GitSync without spec.rollout exits 1" 1 "$(rc "$PC" rollout status plain -n "$NS")"
t_ok "  and says there is no rollout" out_has "^no rollout: GitSync $NS/plain has no spec.rollout"
t_eq "rollout status -o json without a rollout: exit 1" 1 "$("$PC" rollout status plain -n "$NS" -o json 2>/dev/null; echo $?)"
t_eq "  and nothing on stdout" "" "$("$PC" rollout status plain -n "$NS" -o json 2>/dev/null)"
t_eq "rollout status of a rollout plumbd has not started exits 1" 1 "$(rc "$PC" rollout status fresh -n "$NS")"
t_ok "  and says so" out_has "^no rollout yet: GitSync $NS/fresh has spec.rollout but plumbd has not started"

# ---- status: HEALTH, and WAVE when a GitSync rolls out in waves ---------------------------------
t_eq "status exits 0" 0 "$(rc "$PC" status -n "$NS")"
t_ok "  header with WAVE and HEALTH" out_has '^GITSYNC +CLUSTER +WAVE +STATE +HEALTH +COMMIT +OBJECTS +DRIFTED +LAG +MESSAGE$'
t_ok "  c2: canary, Synced, Healthy" out_has "^web +c2 +canary +Synced +Healthy +${NEW:0:12} +4 +0 +- *$"
t_ok "  c3: prod, Progressing, with the unhealthy object" \
	out_has "^web +c3 +prod +Progressing +Progressing +${NEW:0:12} +4 +0 +- +Deployment shop/web: 1 of 3 replicas updated$"
t_ok "  c4: no health yet is -" out_has '^web +c4 +prod +Pending +- +- +0 +0 +-'
t_ok "  c5: the last wave (others), at the old commit" out_has "^web +c5 +\\(others\\) +Synced +Healthy +${OLD:0:12} "
t_ok "  a GitSync without rollout: WAVE -" out_has "^plain +c2 +- +Synced +Healthy +${OLD:0:12} +2 "
t_ok "  fresh: no cluster entries yet" out_has '^fresh +- +- +Pending +- +- '
t_ok "  why web is not Ready" out_has "^web: Ready=False \\(Progressing\\): rollout of ${NEW:0:12}: wave prod in progress$"
t_eq "status of plain alone: no WAVE column" 0 "$(rc "$PC" status plain -n "$NS")"
t_ok "  header without WAVE" out_has '^GITSYNC +CLUSTER +STATE +HEALTH +COMMIT +OBJECTS +DRIFTED +LAG +MESSAGE$'
t_ok "  row without WAVE" out_has "^plain +c2 +Synced +Healthy +${OLD:0:12} +2 +0 +-"
t_ok "status -A has NAMESPACE and WAVE" bash -c "'$PC' status -A | grep -qE '^$NS +web +c3 +prod +Progressing +Progressing '"
"$PC" status web -n "$NS" -o json >"$WORK/web.json" 2>&1
t_ok "status -o json: the unhealthy objects" json_check '.clusters[] | select(.name == "c3") | .unhealthy == {count: 1, objects: [{kind: "Deployment", namespace: "shop", name: "web", state: "Progressing", message: "1 of 3 replicas updated"}]}' <"$WORK/web.json"
t_ok "status -o json: health and wave per cluster" json_check '[.clusters[] | "\(.name) \(.wave) \(.health // "-")"] == ["c2 canary Healthy", "c3 prod Progressing", "c4 prod -", "c5 (others) Healthy"]' <"$WORK/web.json"
t_ok "status -o json: the rollout" json_check --arg c "$NEW" '.rollout.commit == $c and .rollout.state == "Progressing"' <"$WORK/web.json"
t_ok "status -o json of plain: no rollout key" json_check 'has("rollout") | not' < <("$PC" status plain -n "$NS" -o json)

# ---- pause, resume, abort: annotations, nothing else ----------------------------------------------
before_spec=$(kc c1 -n "$NS" get gitsync web -o json | jq -cS '[.metadata.generation, .spec, .status]')
t_eq "rollout pause exits 0" 0 "$(rc "$PC" rollout pause web -n "$NS")"
t_ok "  and says what it did" out_has "^gitsync $NS/web: rollout paused \\(plumb.dev/rollout-paused=true\\)"
t_eq "  the annotation is \"true\"" true "$(annotation web plumb.dev/rollout-paused)"
t_eq "rollout status shows the pause plumbd has not acted on" 0 "$(rc "$PC" rollout status web -n "$NS")"
t_ok "  as requested" out_has '^Pause: +requested \(plumb.dev/rollout-paused\), not yet shown by plumbd$'
set_status web '{"status": {"rollout": {"state": "Paused", "message": "paused (plumb.dev/rollout-paused)"}}}'
"$PC" rollout status web -n "$NS" >"$WORK/out" 2>&1
t_ok "once plumbd shows Paused: the state" out_has '^State: +Paused$'
t_ok "  and no pending pause" bash -c "! grep -q '^Pause:' '$WORK/out'"
t_eq "rollout pause twice is fine" 0 "$(rc "$PC" rollout pause web -n "$NS")"
t_eq "rollout resume exits 0" 0 "$(rc "$PC" rollout resume web -n "$NS")"
t_ok "  and says what it did" out_has "^gitsync $NS/web: rollout resumed \\(plumb.dev/rollout-paused removed\\)$"
t_eq "  the annotation is gone" "<none>" "$(annotation web plumb.dev/rollout-paused)"
t_eq "rollout resume when not paused exits 0" 0 "$(rc "$PC" rollout resume web -n "$NS")"
t_ok "  and says it was not paused" out_has 'rollout resumed .*; it was not paused$'
set_status web '{"status": {"rollout": {"state": "Progressing", "message": "wave prod: 0 of 2 clusters ready"}}}'

t_eq "rollout abort exits 0" 0 "$(rc "$PC" rollout abort web -n "$NS")"
t_ok "  and says where the clusters go" out_has "^gitsync $NS/web: rollout abort requested \\(plumb.dev/rollout-abort=.+\\): every cluster goes back to ${OLD:0:12}$"
abort1=$(annotation web plumb.dev/rollout-abort)
t_ok "  the annotation holds a value" test "$abort1" != "<none>" -a -n "$abort1"
t_ok "  the value it printed" out_has "rollout-abort=$abort1\\)"
t_eq "rollout status shows the abort plumbd has not handled" 0 "$(rc "$PC" rollout status web -n "$NS")"
t_ok "  as requested" out_has "^Abort: +requested \\(plumb.dev/rollout-abort=$abort1\\), not yet handled by plumbd$"
set_status web "$(jq -nc --arg a "$abort1" '{status: {rollout: {state: "Aborted", lastHandledAbort: $a}}}')"
"$PC" rollout status web -n "$NS" >"$WORK/out" 2>&1
t_ok "once plumbd handled it: Aborted and no pending abort" bash -c "grep -qE '^State: +Aborted$' '$WORK/out' && ! grep -q '^Abort:' '$WORK/out'"
t_eq "a second abort exits 0" 0 "$(rc "$PC" rollout abort web -n "$NS")"
t_ok "  says plumbd changes nothing on an aborted rollout" out_has 'the rollout is Aborted already: plumbd changes nothing$'
abort2=$(annotation web plumb.dev/rollout-abort)
t_ok "  with a fresh value" test "$abort2" != "$abort1" -a "$abort2" != "<none>"
t_eq "pause, resume and abort changed no spec and no status" \
	"$(jq -cS '.[2].rollout.state = "Aborted" | .[2].rollout.lastHandledAbort = $a' --arg a "$abort1" <<<"$before_spec")" \
	"$(kc c1 -n "$NS" get gitsync web -o json | jq -cS '[.metadata.generation, .spec, .status]')"

t_eq "rollout pause of a GitSync without spec.rollout is refused (2)" 2 "$(rc "$PC" rollout pause plain -n "$NS")"
t_ok "  and says why" out_has "plumbctl rollout pause: GitSync $NS/plain has no spec.rollout"
t_eq "rollout resume of it is refused (2)" 2 "$(rc "$PC" rollout resume plain -n "$NS")"
t_eq "rollout abort of it is refused (2)" 2 "$(rc "$PC" rollout abort plain -n "$NS")"
t_eq "  no annotation was set on it" "<none> <none>" \
	"$(annotation plain plumb.dev/rollout-paused) $(annotation plain plumb.dev/rollout-abort)"
t_eq "rollout pause of a missing GitSync exits 3" 3 "$(rc "$PC" rollout pause nosuch -n "$NS")"

# ---- a halted rollout: Degraded in status and rollout status --------------------------------------
set_status web "$(jq -nc --arg old "$OLD" --arg new "$NEW" --arg t2 $T2 \
	--argjson ready "$(ready_cond False RolloutHalted "rollout of ${NEW:0:12} halted: wave prod failed" "$(gen web)")" '{status: {
	rollout: {state: "Halted", message: "wave prod failed: cluster c3: Deployment shop/web: progress deadline exceeded",
		waves: [{name: "canary", state: "Succeeded", clusters: ["c2"]},
			{name: "prod", state: "Failed", clusters: ["c3", "c4"], startedAt: $t2, finishedAt: "2026-12-01T10:16:00Z"},
			{name: "(others)", state: "Pending", clusters: ["c5"]}]},
	clusters: [
		{name: "c2", state: "Synced", health: "Healthy", wave: "canary", commit: $new, objects: 4},
		{name: "c3", state: "Degraded", health: "Degraded", wave: "prod", commit: $new, objects: 4,
			message: "Deployment shop/web: progress deadline exceeded"},
		{name: "c4", state: "Synced", health: "Healthy", wave: "prod", commit: $old, objects: 4},
		{name: "c5", state: "Synced", health: "Healthy", wave: "(others)", commit: $old, objects: 4}],
	conditions: [$ready]}}')"
"$PC" rollout status web -n "$NS" >"$WORK/out" 2>&1
t_ok "halted: rollout status says Halted and why" bash -c "grep -qE '^State: +Halted$' '$WORK/out' && grep -qE '^Message: +wave prod failed: cluster c3' '$WORK/out'"
t_ok "  the failed wave" out_has '^prod +Failed +c3,c4 '
"$PC" status web -n "$NS" >"$WORK/out" 2>&1
t_ok "halted: status shows c3 Degraded" out_has "^web +c3 +prod +Degraded +Degraded +${NEW:0:12} .*progress deadline exceeded$"
t_ok "  and why web is not Ready" out_has '^web: Ready=False \(RolloutHalted\)'

# ---- sync --wait reads health and rollouts (plumbd's part written by hand) --------------------------
# wait_sync TIMEOUT STATUS-JSON: starts sync --wait on web in the background
# (SYNC_PID, output in $WORK/sync.out) and plays plumbd: once the request is
# annotated, writes STATUS with lastHandledRequestedAt set to its value.
# Runs in this shell (not under t_ok), so that `wait` can reap the sync.
wait_sync() {
	"$PC" sync web -n "$NS" --wait --timeout "$1" >"$WORK/sync.out" 2>&1 &
	SYNC_PID=$!
	wait_for 10 grep -q 'sync requested' "$WORK/sync.out" &&
		set_status web "$(jq -c --arg t "$(annotation web plumb.dev/requested-at)" \
			'.status.lastHandledRequestedAt = $t' <<<"$2")"
}
running() { kill -0 "$SYNC_PID" 2>/dev/null; }
sync_exit() { wait "$SYNC_PID"; SYNC_RC=$?; }
# the rollout done, the clusters as given, a Ready condition for the current generation
cluster_status() { # READY-STATUS READY-REASON CLUSTERS-JSON
	jq -nc --arg new "$NEW" --argjson cl "$3" --argjson ready "$(ready_cond "$1" "$2" "-" "$(gen web)")" \
		'{status: {lastFetchedCommit: $new, rollout: {commit: $new, state: "Succeeded"}, clusters: $cl, conditions: [$ready]}}'
}
wait_sync 30s "$(cluster_status False Progressing "$(jq -nc --arg c "$NEW" '[{name: "c2", state: "Synced", health: "Healthy", commit: $c},
	{name: "c3", state: "Progressing", health: "Progressing", commit: $c}]')")"
t_eq "sync --wait: plumbd handled the request, c3 Progressing" 0 "$?"
sleep 2
t_ok "  a Progressing cluster is not finished: still waiting" running
set_status web "$(cluster_status True Synced "$(jq -nc --arg c "$NEW" '[{name: "c2", state: "Synced", health: "Healthy", commit: $c},
	{name: "c3", state: "Synced", health: "Healthy", commit: $c}]')")"
sync_exit
t_eq "  once c3 is healthy: exit 0" 0 "$SYNC_RC"
t_ok "  with c3 Synced" grep -qE '^  c3 +Synced' "$WORK/sync.out"

degraded_at() { # COMMIT: c3 Degraded at COMMIT
	cluster_status False HealthCheckFailed "$(jq -nc --arg new "$NEW" --arg c "$1" '[
		{name: "c2", state: "Synced", health: "Healthy", commit: $new}, {name: "c3", state: "Degraded", health: "Degraded", commit: $c}]')"
}
wait_sync 30s "$(degraded_at "$OLD")"
t_eq "sync --wait: plumbd handled the request, c3 Degraded at the old commit" 0 "$?"
sleep 2
t_ok "  Degraded at an older commit: the new one is still to come, waiting" running
set_status web "$(degraded_at "$NEW")"
sync_exit
t_eq "  Degraded at the fetched commit is finished, not Ready: exit 1" 1 "$SYNC_RC"
t_ok "  and says why" grep -q "Ready=False (HealthCheckFailed)" "$WORK/sync.out"

# a halted rollout: c5 stays at the old commit; sync --wait must not wait for it
HALTED=$(jq -nc --arg old "$OLD" --arg new "$NEW" --argjson ready "$(ready_cond False RolloutHalted "halted" "$(gen web)")" \
	'{status: {lastFetchedCommit: $new, rollout: {commit: $new, state: "Halted"}, conditions: [$ready],
	clusters: [{name: "c3", state: "Degraded", health: "Degraded", commit: $new}, {name: "c5", state: "Synced", health: "Healthy", commit: $old}]}}')
wait_sync 30s "$HALTED"
sync_exit
t_eq "sync --wait: a halted rollout (c5 left at the old commit) is finished, not Ready: exit 1" 1 "$SYNC_RC"
t_ok "  and says why" grep -q "Ready=False (RolloutHalted)" "$WORK/sync.out"

# a paused rollout waits, and the timeout says how to go on
wait_sync 3s "$(jq -c '.status.rollout.state = "Paused" | .status.conditions[0].reason = "Progressing"' <<<"$HALTED")"
sync_exit
t_eq "sync --wait on a paused rollout times out (4)" 4 "$SYNC_RC"
t_ok "  and says the rollout is paused" grep -q "the rollout is paused: .plumbctl rollout resume web -n $NS. goes on" "$WORK/sync.out"

t_done
