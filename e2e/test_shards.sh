#!/usr/bin/env bash
# plumbd --shards: 30 GitSyncs over three, then four replicas, with the RBAC
# the chart grants with sharding.enabled=true (its ServiceAccount, ClusterRole
# and Role, a token of that ServiceAccount) and the Deployment's flags.
#   - every GitSync is owned by exactly one replica (status.owner, the
#     replica's metrics, plumbctl status), the spread is within one of even;
#   - a fourth replica takes about a quarter;
#   - kill -9 of a replica: its GitSyncs are owned and synced by the others
#     within the lease and one reconcile;
#   - a webhook delivered to any replica reaches the owner;
#   - SIGTERM: the replica gives its GitSyncs up and deletes its Lease;
#   - the audit logs of all three clusters: no object written by two replicas
#     in the same second, and no request of plumbd's refused.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/tests/lib.sh"
source "$root/e2e/lib.sh"

id=$(tr -dc a-z0-9 </dev/urandom | head -c 6)
INS=$NS-plumb
REL=plumb-$id
SA="system:serviceaccount:$INS:$REL"
TNS=$NS-app
N=30
HOOK_SECRET=shard-hook-$RANDOM$RANDOM
started=$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)
helm="$(bash "$root/hack/build-helm.sh")/helm" || { echo "FAIL: could not build helm"; exit 1; }

# The chart with sharding on, its RBAC moved to this run's namespace and names.
kc c1 create namespace "$INS" >/dev/null
"$helm" template plumb "$root/charts/plumb" --namespace plumb-system --set sharding.enabled=true \
	--set replicas=3 >"$WORK/chart.yaml" || { echo "FAIL: helm template"; exit 1; }
install_rbac "$WORK/chart.yaml"
kc c1 apply -f "$WORK/rbac.yaml" >/dev/null
cleanup_shards() {
	kc c1 delete -f "$WORK/rbac.yaml" --wait=false >/dev/null 2>&1
	kc c1 delete namespace "$INS" --wait=false >/dev/null 2>&1
	for c in c2 c3; do kc "$c" delete namespace "$TNS" --wait=false >/dev/null 2>&1; done
	e2e_cleanup
}
trap cleanup_shards EXIT

sa_kubeconfig
t_eq "the token is the chart's ServiceAccount" "$SA" "$(kk auth whoami -o jsonpath='{.status.userInfo.username}')"
t_eq "it may list Leases in its namespace" yes "$(kk auth can-i list leases.coordination.k8s.io -n "$INS")"
t_eq "and not in another" no "$(kk auth can-i list leases.coordination.k8s.io -n "$NS")"

# The Deployment's flags, with this run's names, loopback ports and short
# leases (the chart's are client-go's 15 s; a failover here takes seconds).
mapfile -t dargs < <(deployment_args "$WORK/chart.yaml")
t_ok "the Deployment shards" grep -qx -- --shards=auto <(printf '%s\n' "${dargs[@]}")
t_eq "and elects no leader" 0 "$(printf '%s\n' "${dargs[@]}" | grep -cx -- --leader-elect)"
LEASE=(--lease-duration 6s --lease-renew-deadline 4s --lease-retry-period 1s)

# launch_replica NAME starts plumbd as the Deployment's container would;
# started_replica NAME waits for it and sets PID_<NAME>, MPORT_<NAME>,
# WPORT_<NAME>, ID_<NAME>. Pods of a Deployment start together: so do a, b, c.
launch_replica() {
	"$BUILD/plumbd" --kubeconfig "$kcfg" --namespace "$NS" "${dargs[@]//CACHE/$1}" "${LEASE[@]}" >"$WORK/plumbd-$1.log" 2>&1 &
	e2e_pids+=("$!")
	printf -v "PID_$1" %s "$!"
}
started_replica() {
	local log="$WORK/plumbd-$1.log" line
	wait_for 10 started_line_complete "$log" || { tail -20 "$log"; return 1; }
	line=$(grep -m1 '"plumbd started"' "$log")
	printf -v "MPORT_$1" %s "$(jq -r .metrics_port <<<"$line")"
	printf -v "WPORT_$1" %s "$(jq -r '.webhook_port // .metrics_port' <<<"$line")"
	printf -v "ID_$1" %s "$(jq -r .identity <<<"$line")"
}
owners() { kc c1 -n "$NS" get gitsyncs -o json | jq -r '.items[] | "\(.metadata.name) \(.status.owner.replica // "" | if . == "" then "-" else . end)"'; }
count_owned() { owners | awk -v r="$1" '$2 == r' | wc -l; }
# all_synced COMMIT [NAMES…]: those GitSyncs (all without NAMES) Synced at COMMIT in c2 and c3
all_synced() {
	local want=$1
	shift
	kc c1 -n "$NS" get gitsyncs -o json | jq -e --arg c "$want" --arg names "$*" '
		[.items[] | select($names == "" or (.metadata.name as $n | $names | split(" ") | index($n)))
		 | ([.status.clusters[]? | select(.state == "Synced" and .commit == $c)] | length == 2)]
		| length > 0 and all' >/dev/null
}
# spread LO HI ID…: every GitSync owned by one of the IDs, each owning LO to HI
spread() {
	local lo=$1 hi=$2 id n total=0
	shift 2
	owners >"$WORK/owners.txt"
	for id in "$@"; do
		n=$(awk -v r="$id" '$2 == r' "$WORK/owners.txt" | wc -l)
		((n >= lo && n <= hi)) || return 1
		total=$((total + n))
	done
	((total == N))
}
value_in() { kc "$1" -n "$TNS" get cm "$2" -o jsonpath='{.data.v}' 2>/dev/null; }

# The tenant side (admin): two targets, one repository of 30 applications,
# 30 GitSyncs polling once an hour, so only an owner's start, a webhook or a
# failover fetches.
register_cluster c2 "env: prod"
register_cluster c3 "env: prod"
for c in c2 c3; do kc "$c" create namespace "$TNS" >/dev/null; done
new_repo shards
webhook_secret hook "$HOOK_SECRET"
write_apps() {
	for i in $(seq -w 1 $N); do
		mkdir -p "$WORKTREE/apps/g$i"
		printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: g%s, namespace: %s}\ndata: {v: "%s"}\n' \
			"$i" "$TNS" "$1" >"$WORKTREE/apps/g$i/cm.yaml"
	done
}
write_apps one
first=$(commit "one")
for i in $(seq -w 1 $N); do
	apply_gitsync "g$i" "apps/g$i" 1h "targets: {clusterSelector: {matchLabels: {env: prod}}}" \
		"webhook: {secretRef: {name: hook}}" "debounce: 200ms"
done

launch_replica a
launch_replica b
launch_replica c
started_replica a
started_replica b
started_replica c
t_ok "every GitSync owned by one of the three, within one of even" wait_for 60 spread 9 11 "$ID_a" "$ID_b" "$ID_c"
t_ok "30 GitSyncs synced in c2 and c3" wait_for 90 all_synced "$first"
na=$(count_owned "$ID_a") nb=$(count_owned "$ID_b") nc=$(count_owned "$ID_c")
echo "# spread over three: $na, $nb, $nc; $(grep -h '"gitsync owned"' "$WORK"/plumbd-*.log | wc -l) claims in all"
t_eq "nothing moved since" $N $((na + nb + nc))
t_ok "a's metric agrees with status ($na)" wait_for 5 bash -c "[[ \$(curl -s http://127.0.0.1:$MPORT_a/metrics | awk '/^plumb_shard_gitsyncs / {print \$2}') == $na ]]"
t_eq "each replica sees three" 3 "$(metric "$MPORT_b" "plumb_shard_replicas ")"
t_eq "a replica's Lease each" 3 "$(kc c1 -n "$INS" get leases -l "plumb.dev/replica-of=$REL" -o name | wc -l)"
g_of_a=$(owners | awk -v r="$ID_a" '$2 == r {print $1; exit}')
t_eq "plumb_gitsync_owned on the owner" 1 "$(metric "$MPORT_a" "plumb_gitsync_owned{gitsync=\"$NS/$g_of_a\"}")"
t_eq "and not on another" 0 "$(metric "$MPORT_b" "plumb_gitsync_owned{gitsync=\"$NS/$g_of_a\"}")"
"$BUILD/plumbctl" status "$g_of_a" -n "$NS" --kubeconfig "$PLUMB_TESTBED/clusters/c1/kubeconfig" >"$WORK/status.txt" 2>&1
t_eq "plumbctl status has an OWNER column" OWNER "$(awk 'NR == 1 {print $9}' "$WORK/status.txt")"
t_eq "naming the owner in each row" "$ID_a $ID_a" "$(awk 'NR > 1 && NF {print $9}' "$WORK/status.txt" | xargs)"

# A fourth replica takes about a quarter.
launch_replica d
started_replica d
claims_before=$(grep -h '"gitsync owned"' "$WORK"/plumbd-*.log | wc -l)
t_ok "the fourth replica takes its share: four within one of even" wait_for 40 spread 7 8 "$ID_a" "$ID_b" "$ID_c" "$ID_d"
nd=$(count_owned "$ID_d")
moved=$(( $(grep -h '"gitsync owned"' "$WORK"/plumbd-*.log | wc -l) - claims_before ))
echo "# d took $nd; $moved GitSyncs changed owner"
t_ok "d took about a quarter ($nd)" test "$nd" -ge 7
t_ok "what moved kept syncing" wait_for 30 all_synced "$first"

# kill -9 of a: its GitSyncs, with a commit no one has fetched yet, must be
# owned by the others and synced at it within the lease (6 s) and a reconcile.
write_apps two
second=$(commit "two")
mapfile -t of_a < <(owners | awk -v r="$ID_a" '$2 == r {print $1}')
t_ok "a owns some" test "${#of_a[@]}" -ge 1
kill -9 "$PID_a"
t0=$(date +%s%N)
t_ok "a's GitSyncs move to the others and take the new commit" wait_for 60 all_synced "$second" "${of_a[@]}"
t1=$(date +%s%N)
echo "# failover: a's ${#of_a[@]} GitSyncs synced at the new commit $(( (t1 - t0) / 1000000 )) ms after kill -9"
t_ok "within lease + one reconcile (6 s + 14 s on a loaded machine)" test $(( (t1 - t0) / 1000000 )) -le 20000
t_ok "the three live ones own all, within one of even" wait_for 30 spread 9 11 "$ID_b" "$ID_c" "$ID_d"

# Webhooks for every GitSync, all delivered to b: each reaches its owner.
for i in $(seq -w 1 $N); do
	code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$WPORT_b/hooks/$NS/g$i" \
		-H "X-Gitlab-Token: $HOOK_SECRET" -H 'Content-Type: application/json' -d '{}')
	[[ $code == 202 ]] || echo "# webhook g$i: $code"
done
t_ok "every GitSync takes the commit from a webhook sent to b" wait_for 40 all_synced "$second"
t_ok "b passed on the webhooks of GitSyncs it does not own" grep -q '"webhook passed on to the leader"' "$WORK/plumbd-b.log"
t_eq "c2 has the new value" two "$(value_in c2 g01)"

# SIGTERM: c gives its GitSyncs up and deletes its Lease.
c_lease=$(kc c1 -n "$INS" get leases -l "plumb.dev/replica-of=$REL" -o json | jq -r --arg r "$ID_c" '.items[] | select(.spec.holderIdentity == $r) | .metadata.name')
t_ok "c has a Lease" test -n "$c_lease"
kill -TERM "$PID_c"
wait "$PID_c"
t_ok "c released what it owned" grep -q '"gitsync released"' "$WORK/plumbd-c.log"
t_fails "c's Lease is gone" NotFound kc c1 -n "$INS" get lease "$c_lease"
t_ok "b and d own all 30 soon after" wait_for 20 spread 15 15 "$ID_b" "$ID_d"

# The audit logs: every write plumbd made names its replica in the user
# agent; no object was written by two replicas in the same second. The
# hand-over writes themselves (status.owner, field manager plumb-shard, and
# a webhook handed on, plumb-webhook) are one replica after the other by
# design and ordered by resourceVersion: they are left out. So is the
# inventory's Namespace plumb-system in each target: every GitSync's engine
# applies it (the same object, the same fields), whoever owns the GitSync.
for c in c1 c2 c3; do
	jq -c --arg since "$started" 'select(.stageTimestamp >= $since and (.userAgent // "" | startswith("plumb/"))
		and (.verb | test("^(create|update|patch|delete)$")) and (.responseStatus.code // 0) < 300
		and (.objectRef.resource != "leases") and (.objectRef.resource != "events")
		and (.requestURI | test("fieldManager=plumb-(shard|webhook)") | not)
		and ((.objectRef.resource == "namespaces" and .objectRef.name == "plumb-system") | not))
		| {s: .stageTimestamp[0:19], o: "\(.objectRef.resource)/\(.objectRef.namespace)/\(.objectRef.name)/\(.objectRef.subresource // "")", u: .userAgent}' \
		"$PLUMB_TESTBED/clusters/$c/audit.log"
done >"$WORK/writes.jsonl"
t_ok "the audit logs have plumbd's writes" test "$(wc -l <"$WORK/writes.jsonl")" -gt $((2 * N))
t_eq "every write names a replica" 0 "$(jq -r 'select(.u | test("\\(.+_[a-z0-9]+\\)$") | not)' "$WORK/writes.jsonl" | wc -l)"
t_eq "no object written by two replicas in the same second" "" \
	"$(jq -rs 'group_by(.s + " " + .o) | map(select((map(.u) | unique | length) > 1)) | .[] | .[0].s + " " + .[0].o' "$WORK/writes.jsonl" | head)"
t_eq "no request of plumbd's got a 403" "" \
	"$(jq -r --arg u "$SA" --arg since "$started" 'select(.user.username == $u and .stageTimestamp >= $since and .responseStatus.code == 403) | "\(.verb) \(.requestURI)"' "$PLUMB_TESTBED/clusters/c1/audit.log" | sort | uniq -c)"

t_done
