#!/usr/bin/env bash
# The trust boundary, per GitSync (issue 13 §2), tried as a tenant would: a
# tenant may create Secrets, Clusters and GitSyncs in its namespace of the
# management cluster (c1) and push to its repository; in target c2 its
# ServiceAccount may manage ConfigMaps in one namespace. The Cluster's
# kubeconfig is c2's admin: whatever the tenant gets beyond its
# ServiceAccount's rights, it gets with those.
#
#   1 spec.serviceAccountName: a ClusterRoleBinding to cluster-admin in Git is
#     not created, status names the 403; every request for the GitSync went
#     as the impersonated ServiceAccount (c2's audit log); what the account
#     may do is done (the inventory included).
#   2 --default-service-account: the same for a GitSync that names none.
#   3 a Cluster without kubeConfigSecretRef outside --management-target-namespaces:
#     not Ready (ManagementTargetNotAllowed), nothing written to c1.
#   4 same URL, other credentials: the GitSync with the wrong password never
#     gets the content the right one fetched (a mirror per credentials).
#   5 file:// refused by default (FileURLNotAllowed), and with --allow-file-urls
#     and the namespace allowed, both work.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/tests/lib.sh"
source "$root/e2e/lib.sh"

APPS=$NS-apps               # the one namespace the tenant's ServiceAccount may use in c2
MGMT=$NS-mgmt               # a namespace of c1 a management-target GitSync would write to
SA="system:serviceaccount:$NS:deployer"
FALLBACK="system:serviceaccount:$NS:fallback"
CRB=$NS-pwn                 # the ClusterRoleBinding the tenant tries to get

trust_cleanup() {
	kc c2 delete namespace "$APPS" --wait=false >/dev/null 2>&1
	kc c2 delete clusterrolebinding "$CRB" "$CRB-default" "$NS-inventory-ns" >/dev/null 2>&1
	kc c2 delete clusterrole "$NS-inventory-ns" >/dev/null 2>&1
	kc c2 -n plumb-system delete role,rolebinding "$NS-inventory" >/dev/null 2>&1
	kc c1 delete namespace "$MGMT" --wait=false >/dev/null 2>&1
	e2e_cleanup
}
trap trust_cleanup EXIT

register_cluster c2 "env: prod"
new_repo tenant
kc c2 create namespace "$APPS" >/dev/null
kc c2 create namespace plumb-system >/dev/null 2>&1
kc c1 create namespace "$MGMT" >/dev/null

# c2: deployer may manage ConfigMaps in $APPS and its GitSync's inventory
# (ConfigMaps in plumb-system, and read that namespace). Nothing else.
kc c2 apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: deployer, namespace: $APPS}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: deployer, namespace: $APPS}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}
subjects: [{kind: ServiceAccount, name: deployer, namespace: $NS}, {kind: ServiceAccount, name: fallback, namespace: $NS}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: $NS-inventory, namespace: plumb-system}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: $NS-inventory, namespace: plumb-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: $NS-inventory}
subjects: [{kind: ServiceAccount, name: deployer, namespace: $NS}, {kind: ServiceAccount, name: fallback, namespace: $NS}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: $NS-inventory-ns}
rules:
- apiGroups: [""]
  resources: [namespaces]
  resourceNames: [plumb-system]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: $NS-inventory-ns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: $NS-inventory-ns}
subjects: [{kind: ServiceAccount, name: deployer, namespace: $NS}, {kind: ServiceAccount, name: fallback, namespace: $NS}]
EOF

# The repository: what the tenant may apply, and the escalation it tries.
mkdir -p "$WORKTREE/ok" "$WORKTREE/attack" "$WORKTREE/attack-default" "$WORKTREE/mgmt" "$WORKTREE/local"
cat >"$WORKTREE/ok/cm.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: allowed, namespace: $APPS}
data: {team: tenant}
EOF
for d in attack attack-default; do
	name=$CRB
	[[ $d == attack-default ]] && name=$CRB-default
	cat >"$WORKTREE/$d/crb.yaml" <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: $name}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: Group, name: "system:serviceaccounts:$NS", apiGroup: rbac.authorization.k8s.io}]
EOF
done
cat >"$WORKTREE/local/cm.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: from-file, namespace: $APPS}
data: {via: file}
EOF
cat >"$WORKTREE/mgmt/cm.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: planted, namespace: $MGMT}
data: {from: tenant}
EOF
head_id=$(commit "tenant config")

# gitsync NAME PATH SA|- CLUSTER [SECRET] [URL]
gitsync() {
	local sa_line=""
	[[ $3 != - ]] && sa_line="serviceAccountName: $3"
	kc c1 -n "$NS" apply -f - >/dev/null <<-EOF
	apiVersion: plumb.dev/v1alpha1
	kind: GitSync
	metadata: {name: $1}
	spec:
	  $sa_line
	  git: {url: "${6:-$REPO_URL}", ref: {branch: main}, path: $2, secretRef: {name: ${5:-git-auth}}, interval: 10m}
	  targets: {clusterNames: [$4]}
	EOF
}

# The tenant's Cluster for the management cluster, with no Secret at all.
kc c1 -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: plumb.dev/v1alpha1
kind: Cluster
metadata: {name: mgmt}
spec: {}
EOF
kc c1 -n "$NS" create secret generic git-wrong --from-literal=username="$BASIC_USER" \
	--from-literal=password="not-the-password-$RANDOM" --from-file=caFile="$CA_FILE" >/dev/null

since=$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)
gitsync good ok deployer c2
gitsync attack attack deployer c2
gitsync attack-default attack-default - c2
gitsync to-mgmt mgmt deployer mgmt
gitsync wrong-creds ok deployer c2 git-wrong
gitsync local local deployer c2 git-auth "file://$REPO"
# Another plumbd namespace is allowed as a management target, not this one.
start_plumbd main --default-service-account fallback --management-target-namespaces "$NS-elsewhere"

msg() { gs_jq "$1" ".status.clusters[]? | select(.name == \"$2\") | .message"; }
failed_with() { # GITSYNC CLUSTER PATTERN
	[[ $(cluster_state "$1" "$2") == Failed ]] && grep -qE -- "$3" <<<"$(msg "$1" "$2")"
}
stalled_with() { # GITSYNC REASON
	[[ $(gs_jq "$1" '.status.conditions[]? | select(.type == "Stalled") | "\(.status) \(.reason)"') == "True $2" ]]
}
# audit C: plumbd's requests to cluster C since the start, as JSON lines
audit() { grep -F '"plumb/' "$PLUMB_TESTBED/clusters/$1/audit.log" | jq -c --arg since "$since" 'select(.stageTimestamp >= $since)'; }

synced() { [[ $(gs_jq "$1" '.status.clusters[0] | "\(.state) \(.commit)"') == "Synced $head_id" ]]; }
cm_is() { [[ $(kc c2 -n "$APPS" get cm allowed -o jsonpath='{.data.team}') == tenant ]]; }
cl_ready() { kc c1 -n "$NS" get cluster mgmt -o json | jq -r '.status.conditions[]? | select(.type == "Ready") | "\(.status) \(.reason)"'; }
cl_ready_is() { [[ $(cl_ready) == "$1"* ]]; }

# 1. The account may manage its ConfigMaps: done, as the account.
t_ok "1 what the ServiceAccount may do is done" wait_for 30 cm_is
t_ok "1 good is Synced at the commit" wait_for 20 synced good
# Drift in what it manages is seen by its own (impersonated) watch and corrected as it.
kc c2 -n "$APPS" patch cm allowed --type=merge -p '{"data":{"team":"edited"}}' >/dev/null
t_ok "1 drift corrected through the ServiceAccount's own watch" wait_for 10 cm_is
# The ClusterRoleBinding: refused with the server's 403, never created.
t_ok "1 attack fails with the server's 403, named in status" wait_for 30 failed_with attack c2 \
	"ClusterRoleBinding $CRB.*403.*$SA.*cannot"
t_fails "1 no ClusterRoleBinding to cluster-admin in c2" "NotFound" kc c2 get clusterrolebinding "$CRB"
echo "    status: $(msg attack c2 | cut -c1-300)"
# Every request about the binding, and every write for the tenant's
# GitSyncs, was made by c2's admin credentials acting as the ServiceAccount.
audit c2 >"$WORK/audit-c2.json"
crb_reqs() { jq -c --arg n "$1" 'select(.objectRef.resource == "clusterrolebindings" and .objectRef.name == $n)' "$WORK/audit-c2.json"; }
t_ok "1 plumbd asked for the binding" test -n "$(crb_reqs "$CRB")"
t_eq "1 ... only as the ServiceAccount, with its groups, and got 403" "admin $SA system:serviceaccounts,system:serviceaccounts:$NS,system:authenticated 403" \
	"$(crb_reqs "$CRB" | jq -r '"\(.user.username) \(.impersonatedUser.username) \(.impersonatedUser.groups | join(",")) \(.responseStatus.code)"' | sort -u)"
# (the default's account may have written nothing: a revision refused whole
# writes nothing)
t_eq "1 every write to $APPS and the inventory went as a ServiceAccount (its own, or the default's)" "$SA" \
	"$(jq -r 'select(.verb == "create" or .verb == "update" or .verb == "patch" or .verb == "delete")
		| select(.objectRef.namespace == "'"$APPS"'" or (.objectRef.namespace == "plumb-system" and (.objectRef.name // "" | startswith("plumb-inventory"))))
		| .impersonatedUser.username // "NOT IMPERSONATED"' "$WORK/audit-c2.json" | sort -u | grep -vx "$FALLBACK" | tr '\n' ' ' | sed 's/ $//')"
t_eq "1 no request of plumbd's about $APPS without impersonation" 0 \
	"$(jq -r 'select(.objectRef.namespace == "'"$APPS"'" and .impersonatedUser == null)' "$WORK/audit-c2.json" | grep -c .)"
t_ok "1 the watch of its ConfigMaps is the ServiceAccount's, in its namespace" test -n \
	"$(jq -r 'select(.verb == "watch" and .objectRef.resource == "configmaps" and .objectRef.namespace == "'"$APPS"'" and .impersonatedUser.username == "'"$SA"'")' "$WORK/audit-c2.json")"

# 2. A GitSync that names no ServiceAccount acts as --default-service-account.
t_ok "2 default-SA GitSync fails with the 403 as 'fallback'" wait_for 30 failed_with attack-default c2 \
	"ClusterRoleBinding $CRB-default.*403.*$FALLBACK"
t_fails "2 no ClusterRoleBinding from the default-SA GitSync" "NotFound" kc c2 get clusterrolebinding "$CRB-default"
audit c2 >"$WORK/audit-c2.json"
t_eq "2 its requests went as the default ServiceAccount" "$FALLBACK 403" \
	"$(crb_reqs "$CRB-default" | jq -r '"\(.impersonatedUser.username) \(.responseStatus.code)"' | sort -u)"
t_eq "2 the GitSync naming its own account did not use the default" "" \
	"$(crb_reqs "$CRB" | jq -r 'select(.impersonatedUser.username != "'"$SA"'") | .impersonatedUser.username')"

# 3. The management cluster as a target, from a namespace not allowed.
t_ok "3 the Cluster is not Ready: ManagementTargetNotAllowed" wait_for 20 cl_ready_is "False ManagementTargetNotAllowed"
t_ok "3 the GitSync says why" wait_for 20 failed_with to-mgmt mgmt "ManagementTargetNotAllowed.*--management-target-namespaces"
t_fails "3 nothing planted in the management cluster" "NotFound" kc c1 -n "$MGMT" get cm planted
t_eq "3 plumbd sent c1 nothing about $MGMT or an inventory" 0 \
	"$(audit c1 | jq -r 'select(.objectRef.namespace == "'"$MGMT"'" or (.objectRef.namespace == "plumb-system" and .objectRef.resource == "configmaps"))' | grep -c .)"

# 4. Same URL, wrong password: fails to fetch, never syncs what the right
# credentials fetched into their own mirror.
t_ok "4 wrong credentials: Stalled, AuthenticationFailed" wait_for 20 stalled_with wrong-creds AuthenticationFailed
kc c1 -n "$NS" annotate gitsync wrong-creds plumb.dev/requested-at="$(date +%s%N)" --overwrite >/dev/null
sleep 3
t_ok "4 ... still Stalled after the other GitSync synced the commit" stalled_with wrong-creds AuthenticationFailed
t_eq "4 ... and it never saw or applied the commit" "|" \
	"$(gs_jq wrong-creds '"\(.status.lastFetchedCommit // "")|\([.status.clusters[]? | .commit // "" | select(. != "")] | join(","))"')"
mirrors() { # the cache's mirrors that hold the commit, and all of them
	local with=0 all=0 m
	for m in "$WORK/cache-main"/*.git; do
		all=$((all + 1))
		git --git-dir="$m" cat-file -e "$head_id^{commit}" 2>/dev/null && with=$((with + 1))
	done
	echo "$with/$all"
}
t_eq "4 two mirrors of the URL, one per credentials; only the right one holds the commit" "1/2" "$(mirrors)"

# 5. file:// is plumbd's own file system: refused by default.
t_ok "5 file:// refused: Stalled, FileURLNotAllowed" wait_for 20 stalled_with local FileURLNotAllowed
t_eq "5 ... nothing fetched from it" "" "$(gs_jq local '.status.lastFetchedCommit // ""')"

# The operator's switches: with the namespace allowed and file:// accepted,
# the same objects work (the refusals above were the flags, nothing else).
kill -TERM "$PLUMBD_PID"
wait "$PLUMBD_PID" 2>/dev/null
start_plumbd allowed --default-service-account fallback --management-target-namespaces "$NS-elsewhere,$NS" --allow-file-urls
t_ok "5 allowed namespace: the management Cluster is Ready" wait_for 20 cl_ready_is "True"
t_ok "5 --allow-file-urls: the file:// GitSync syncs" wait_for 30 synced local
# In the management cluster the GitSync still acts as its ServiceAccount,
# which may do nothing there: refused, not done with plumbd's rights.
t_ok "5 management target: the GitSync acts as its ServiceAccount there too (403)" wait_for 30 \
	failed_with to-mgmt mgmt "403.*$SA"
t_fails "5 ... so nothing planted" "NotFound" kc c1 -n "$MGMT" get cm planted
t_ok "no crash" kill -0 "$PLUMBD_PID"
if ((t_failed > 0)); then
	for l in "$WORK"/plumbd-*.log; do echo "--- $l"; grep -v '"debug"' "$l" | tail -25; done
fi

t_done
