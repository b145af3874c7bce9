#!/usr/bin/env bash
# charts/plumb on a real apiserver: lint, render checks for every switch,
# `helm template | kubectl apply --dry-run=server`, a real `helm install`
# that creates every object, RBAC checked with `kubectl auth can-i` as
# plumbd's ServiceAccount, `helm uninstall` removing them, and the copies that
# must stay identical (chart CRDs, manifests/install/plumb.yaml).
#
# Needs PLUMB_TESTBED and PLUMB_K8S_BIN (hack/run-tests.sh sets them); uses
# cluster c1 with its own release and namespaces, and removes them.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tests/lib.sh"
kc="$PLUMB_TESTBED/clusters/c1/kubeconfig"
k() { "$PLUMB_K8S_BIN/kubectl" --kubeconfig "$kc" "$@"; }
helm_bin=$(bash "$root/hack/build-helm.sh") || { echo "FAIL: could not build helm"; exit 1; }
h() { "$helm_bin/helm" --kubeconfig "$kc" "$@"; }
chart="$root/charts/plumb"
id=$RANDOM$RANDOM
ns=helm-$id          # release namespace
wns=helm-watch-$id   # a watched namespace
other=helm-other-$id # a namespace plumbd must not read
rel=plumb-t$id       # release name; contains "plumb", so it is also the full name
sa="system:serviceaccount:$ns:$rel"
plumbd=${BUILD:-build}/plumbd
[[ $plumbd == /* ]] || plumbd=$root/$plumbd
tmp=$(mktemp -d)
cleanup() {
	h uninstall "$rel" -n "$ns" >/dev/null 2>&1
	h uninstall "$rel-d" -n "$ns" >/dev/null 2>&1
	k delete namespace "$ns" "$wns" "$other" --wait=false >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT

# render [helm flags…]: the chart rendered for release $rel in $ns.
render() { h template "$rel" "$chart" -n "$ns" "$@"; }
# as_json FILE: the rendered objects as the apiserver sees them (server dry
# run, nothing stored), as one JSON List.
as_json() { k apply --dry-run=server -o json -f "$1"; }
# kinds FILE: "Kind/name" of every object in a rendered YAML stream, sorted.
kinds() { python3 -c '
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d: print(d["kind"] + "/" + d["metadata"]["name"])' "$1" | sort; }

k create namespace "$ns" >/dev/null
k create namespace "$wns" >/dev/null
k create namespace "$other" >/dev/null

# --- lint --------------------------------------------------------------------
lint_clean() {
	local out
	out=$(h lint --strict "$chart" "$@" 2>&1) || { echo "$out"; return 1; }
	! grep -E '\[(WARNING|ERROR)\]' <<<"$out"
}
t_ok "lint default values" lint_clean
t_ok "lint watchNamespace + managementTarget + serviceMonitor" \
	lint_clean --set watchNamespace=team-a --set managementTarget.enabled=true --set serviceMonitor.enabled=true
t_ok "lint one replica" lint_clean --set replicas=1 --set leaderElection.enabled=false

# --- render: what the switches do ----------------------------------------------
render >"$tmp/default.yaml"
t_eq "default objects" "ClusterRole/$rel
ClusterRoleBinding/$rel
Deployment/$rel
PodDisruptionBudget/$rel
Role/$rel-leader-election
RoleBinding/$rel-leader-election
Service/$rel
Service/$rel-webhook
ServiceAccount/$rel" "$(kinds "$tmp/default.yaml")"

t_ok "default render accepted by the apiserver (dry run)" \
	bash -c "'$helm_bin/helm' --kubeconfig '$kc' template '$rel' '$chart' -n '$ns' | '$PLUMB_K8S_BIN/kubectl' --kubeconfig '$kc' apply --dry-run=server -f -"
as_json "$tmp/default.yaml" >"$tmp/default.json"
dep() { jq -r ".items[] | select(.kind == \"Deployment\") | $1" "$tmp/default.json"; }
t_eq "replicas" 2 "$(dep .spec.replicas)"
t_eq "args" "--leader-elect --lease-name=$rel --lease-namespace=$ns --metrics-addr=:8080 --health-addr=:8081 --webhook-addr=:8082 --workers=4 --log-level=info --cache-dir=/var/cache/plumb --shutdown-timeout=30s" \
	"$(dep '.spec.template.spec.containers[0].args | join(" ")')"
t_eq "container securityContext" '{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"privileged":false,"readOnlyRootFilesystem":true,"runAsGroup":65532,"runAsNonRoot":true,"runAsUser":65532,"seccompProfile":{"type":"RuntimeDefault"}}' \
	"$(dep '.spec.template.spec.containers[0].securityContext | tojson')"
t_eq "pod securityContext" '{"fsGroup":65532,"runAsGroup":65532,"runAsNonRoot":true,"runAsUser":65532,"seccompProfile":{"type":"RuntimeDefault"}}' \
	"$(dep '.spec.template.spec.securityContext | tojson')"
t_eq "liveness probe" "/healthz health" "$(dep '.spec.template.spec.containers[0].livenessProbe.httpGet | "\(.path) \(.port)"')"
t_eq "readiness probe" "/readyz health" "$(dep '.spec.template.spec.containers[0].readinessProbe.httpGet | "\(.path) \(.port)"')"
t_eq "ports" "metrics:8080 health:8081 webhook:8082" "$(dep '[.spec.template.spec.containers[0].ports[] | "\(.name):\(.containerPort)"] | join(" ")')"
t_eq "cache dir is an emptyDir mount" "emptyDir" \
	"$(dep '. as $d | .spec.template.spec.containers[0].volumeMounts[] | select(.mountPath == "/var/cache/plumb") | .name as $n | $d.spec.template.spec.volumes[] | select(.name == $n) | keys[] | select(. != "name")')"
t_eq "topology spread selects own pods" "kubernetes.io/hostname=$rel topology.kubernetes.io/zone=$rel" \
	"$(dep '[.spec.template.spec.topologySpreadConstraints[] | "\(.topologyKey)=\(.labelSelector.matchLabels["app.kubernetes.io/instance"])"] | join(" ")')"
t_eq "resources" '{"limits":{"memory":"512Mi"},"requests":{"cpu":"100m","memory":"128Mi"}}' "$(dep '.spec.template.spec.containers[0].resources | tojson')"
t_eq "image" "plumb:0.1.0-dev" "$(dep '.spec.template.spec.containers[0].image')"
t_eq "service port" "metrics:8080->metrics" "$(jq -r ".items[] | select(.kind == \"Service\" and .metadata.name == \"$rel\") | .spec.ports | map(\"\\(.name):\\(.port)->\\(.targetPort)\") | join(\" \")" "$tmp/default.json")"
t_eq "webhook service port, and only that" "webhook:8082->webhook" "$(jq -r ".items[] | select(.kind == \"Service\" and .metadata.name == \"$rel-webhook\") | .spec.ports | map(\"\\(.name):\\(.port)->\\(.targetPort)\") | join(\" \")" "$tmp/default.json")"
render --set webhook.enabled=false >"$tmp/nohook.yaml"
t_eq "webhook.enabled=false: no webhook Service" "" "$(kinds "$tmp/nohook.yaml" | grep -- -webhook)"
t_eq "webhook.enabled=false: no --webhook-addr, no webhook port" "0 0" \
	"$(python3 -c 'import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "Deployment":
        c = d["spec"]["template"]["spec"]["containers"][0]
        print(sum(a.startswith("--webhook-addr") for a in c["args"]), sum(p["name"] == "webhook" for p in c["ports"]))' "$tmp/nohook.yaml")"
t_eq "pdb" 1 "$(jq -r '.items[] | select(.kind == "PodDisruptionBudget") | .spec.maxUnavailable' "$tmp/default.json")"
t_eq "cluster role rules" \
	'plumb.dev gitsyncs,clusters get,list,watch|plumb.dev gitsyncs/status,clusters/status get,update,patch| secrets get,list,watch|events.k8s.io events create,patch' \
	"$(jq -r '[.items[] | select(.kind == "ClusterRole") | .rules[] | "\(.apiGroups | join(",")) \(.resources | join(",")) \(.verbs | join(","))"] | join("|")' "$tmp/default.json")"

render --set replicas=1 >"$tmp/one.yaml"
t_eq "no PDB with one replica" "" "$(kinds "$tmp/one.yaml" | grep PodDisruptionBudget)"
t_fails "two replicas need leader election" "needs leaderElection.enabled=true" render --set leaderElection.enabled=false
t_fails "log level checked" "logLevel must be debug, info, warn or error" render --set logLevel=verbose
t_fails "ServiceMonitor needs the Service" "needs service.enabled" render --set serviceMonitor.enabled=true --set service.enabled=false

render --set serviceMonitor.enabled=true --set serviceMonitor.labels.release=prom >"$tmp/sm.yaml"
t_eq "ServiceMonitor only when enabled" "ServiceMonitor/$rel" "$(kinds "$tmp/sm.yaml" | grep ServiceMonitor)"
t_eq "no ServiceMonitor by default" "" "$(kinds "$tmp/default.yaml" | grep ServiceMonitor)"
t_eq "ServiceMonitor scrapes the metrics port" "metrics /metrics prom" \
	"$(python3 -c 'import sys,yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "ServiceMonitor": e = d["spec"]["endpoints"][0]; print(e["port"], e["path"], d["metadata"]["labels"]["release"])' "$tmp/sm.yaml")"

render --set watchNamespace="$wns" --set 'extraEnv[0].name=HTTPS_PROXY' --set 'extraEnv[0].value=http://proxy:3128' \
	--set logLevel=debug --set workers=8 --set image.tag=1.2.3 >"$tmp/watch.yaml"
t_ok "watchNamespace render accepted by the apiserver (dry run)" as_json "$tmp/watch.yaml"
as_json "$tmp/watch.yaml" >"$tmp/watch.json"
t_eq "watchNamespace: a Role there, no ClusterRole" "Role/$wns" \
	"$(jq -r ".items[] | select(.metadata.name == \"$rel\" and (.kind | test(\"Role$\"))) | \"\(.kind)/\(.metadata.namespace)\"" "$tmp/watch.json")"
t_eq "watchNamespace: --namespace flag and values" "--namespace=$wns --workers=8 --log-level=debug plumb:1.2.3 HTTPS_PROXY=http://proxy:3128" \
	"$(jq -r '.items[] | select(.kind == "Deployment") | .spec.template.spec.containers[0] | "\(.args[0]) \(.args | map(select(startswith("--workers") or startswith("--log-level"))) | join(" ")) \(.image) \(.env[0].name)=\(.env[0].value)"' "$tmp/watch.json")"

render --set managementTarget.enabled=true --set managementTarget.inventoryNamespace="$ns" >"$tmp/mt.yaml"
t_ok "managementTarget render accepted by the apiserver (dry run)" as_json "$tmp/mt.yaml"
t_eq "managementTarget objects" "ClusterRole/$rel-inventory
ClusterRole/$rel-management-target
ClusterRole/$rel-management-target-impersonate
ClusterRoleBinding/$rel-management-target
RoleBinding/$rel-inventory
RoleBinding/$rel-management-target-impersonate" "$(kinds "$tmp/mt.yaml" | grep -E 'management-target|inventory')"
t_eq "managementTarget: only the release namespace by default" "--management-target-namespaces=$ns" \
	"$(python3 -c 'import sys,yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "Deployment": print(" ".join(a for a in d["spec"]["template"]["spec"]["containers"][0]["args"] if "management" in a))' "$tmp/mt.yaml")"
t_eq "managementTarget: default rules grant nothing but the inventory namespace" '[{"apiGroups":[""],"resources":["namespaces"],"verbs":["get","create"]}]' \
	"$(python3 -c 'import sys,yaml,json
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-management-target"): print(json.dumps(d["rules"], separators=(",", ":")))' "$tmp/mt.yaml")"
render --set managementTarget.enabled=true --set 'managementTarget.namespaces={ta,tb}' --set defaultServiceAccount=deployer \
	--set allowFileURLs=true >"$tmp/mt2.yaml"
t_eq "managementTarget namespaces: flags and one impersonate RoleBinding each" \
	"--default-service-account=deployer --management-target-namespaces=ta,tb --allow-file-urls|ta tb" \
	"$(python3 -c 'import sys,yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
dep = [d for d in docs if d["kind"] == "Deployment"][0]
args = [a for a in dep["spec"]["template"]["spec"]["containers"][0]["args"] if a.startswith(("--default-service", "--management", "--allow-file"))]
rbs = sorted(d["metadata"]["namespace"] for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("-impersonate"))
print(" ".join(args) + "|" + " ".join(rbs))' "$tmp/mt2.yaml")"
t_eq "managementTarget off by default" "" "$(kinds "$tmp/default.yaml" | grep -E 'management-target|inventory')"

# --- helm install into the real cluster ------------------------------------------
# No kubelet or controller-manager in the test bed: the pods never run, so no --wait.
exists() { # kind name ns
	if [[ -n $3 ]]; then k get "$1" "$2" -n "$3" -o name; else k get "$1" "$2" -o name; fi
}
# objects RELEASE OUT: "kind name namespace" of every object the release holds.
objects() {
	h get manifest "$1" -n "$ns" | python3 -c '
import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d: print(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace", ""))' >"$2"
}

# plumbd_as RELEASE GITSYNC_NS [plumbd flags…]: plumbd (the tests' build) with
# nothing but the release's ServiceAccount token, like the pod; a GitSync with
# an unreachable repository in GITSYNC_NS must get a Lease, a Stalled status
# and a FetchFailed Event from it: the chart's RBAC is enough, not just small.
plumbd_as() {
	local release=$1 gns=$2 kcfg="$tmp/$1.kubeconfig" log="$tmp/$1.plumbd.log" server token mport hport pid gs=stalled-$1
	shift 2
	server=$(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')
	token=$(k create token "$release" -n "$ns" --duration=10m)
	k config --kubeconfig="$kcfg" set-cluster c1 --server="$server" \
		--certificate-authority="$PLUMB_TESTBED/clusters/c1/ca.crt" --embed-certs >/dev/null
	k config --kubeconfig="$kcfg" set-credentials sa --token="$token" >/dev/null
	k config --kubeconfig="$kcfg" set-context sa --cluster=c1 --user=sa --namespace="$ns" >/dev/null
	k config --kubeconfig="$kcfg" use-context sa >/dev/null
	k apply -f - >/dev/null <<-EOF
	apiVersion: plumb.dev/v1alpha1
	kind: GitSync
	metadata: {name: $gs, namespace: $gns}
	spec:
	  git: {url: "file:///nonexistent/repo.git", ref: {branch: main}}
	  targets: {clusterNames: [nowhere]}
	EOF
	mport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	hport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	"$plumbd" --kubeconfig="$kcfg" --leader-elect --lease-name="$release" --lease-namespace="$ns" \
		--metrics-addr="127.0.0.1:$mport" --health-addr="127.0.0.1:$hport" --cache-dir="$tmp/cache-$release" \
		--shutdown-timeout=5s --allow-file-urls "$@" >"$log" 2>&1 &
	pid=$!
	until_ok() { for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; kill -0 "$pid" 2>/dev/null || return 1; sleep 0.5; done; return 1; }
	t_ok "$release: plumbd as the ServiceAccount is ready" until_ok curl -fsS "http://127.0.0.1:$hport/readyz"
	lease_ok() { [[ -n $(k get lease "$release" -n "$ns" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null) ]]; }
	stalled() { [[ $(k get gitsync "$gs" -n "$gns" -o jsonpath='{.status.conditions[?(@.type=="Stalled")].status}') == True ]]; }
	evented() { k get events.events.k8s.io -n "$gns" -o json | json_check --arg n "$gs" '[.items[] | select(.regarding.name == $n and .reason == "FetchFailed")] | length > 0'; }
	t_ok "$release: holds its Lease" until_ok lease_ok
	t_ok "$release: writes GitSync status" until_ok stalled
	t_ok "$release: posts Events" until_ok evented
	t_ok "$release: no permission errors" bash -c "! grep -iE 'forbidden|\\b403\\b' '$log'"
	kill -TERM "$pid"
	wait "$pid"
	t_eq "$release: plumbd stops cleanly" 0 "$?"
	k delete gitsync "$gs" -n "$gns" --wait=false >/dev/null
}

# First with the default values, as a user would.
t_ok "helm install (defaults)" h install "$rel-d" "$chart" -n "$ns"
objects "$rel-d" "$tmp/objects-d"
t_eq "installed object count (defaults)" 9 "$(wc -l <"$tmp/objects-d")"
while read -r kind name namespace; do
	t_ok "installed (defaults): $kind $name" exists "$kind" "$name" "$namespace"
done <"$tmp/objects-d"
plumbd_as "$rel-d" "$wns"
t_ok "helm uninstall (defaults)" h uninstall "$rel-d" -n "$ns"
while read -r kind name namespace; do
	t_fails "removed (defaults): $kind $name" "NotFound|not found" exists "$kind" "$name" "$namespace"
done <"$tmp/objects-d"

# Then with every optional object.
t_ok "helm install" h install "$rel" "$chart" -n "$ns" --set watchNamespace="$wns" \
	--set managementTarget.enabled=true --set managementTarget.inventoryNamespace="$ns" \
	--set 'managementTarget.rules[0].apiGroups[0]=' --set 'managementTarget.rules[0].resources[0]=configmaps' \
	--set 'managementTarget.rules[0].verbs={get,list,watch,patch,delete}'
objects "$rel" "$tmp/objects"
t_eq "installed object count" 15 "$(wc -l <"$tmp/objects")"
while read -r kind name namespace; do
	t_ok "installed: $kind $name" exists "$kind" "$name" "$namespace"
done <"$tmp/objects"
t_ok "CRDs present after install" k get crd gitsyncs.plumb.dev clusters.plumb.dev
t_eq "release deployed" deployed "$(h status "$rel" -n "$ns" -o json | jq -r .info.status)"

# RBAC as plumbd's ServiceAccount sees it.
can() { k auth can-i --as="$sa" "$@"; }
cannot() { ! k auth can-i --as="$sa" "$@"; }
t_ok "rbac: list gitsyncs in watched ns" can list gitsyncs.plumb.dev -n "$wns"
t_ok "rbac: watch clusters in watched ns" can watch clusters.plumb.dev -n "$wns"
t_ok "rbac: patch gitsyncs/status" can patch gitsyncs.plumb.dev --subresource=status -n "$wns"
t_ok "rbac: update clusters/status" can update clusters.plumb.dev --subresource=status -n "$wns"
t_ok "rbac: read secrets in watched ns" can get secrets -n "$wns"
t_ok "rbac: create events in watched ns" can create events.events.k8s.io -n "$wns"
t_ok "rbac: no gitsync spec writes" cannot update gitsyncs.plumb.dev -n "$wns"
t_ok "rbac: no gitsync deletes" cannot delete gitsyncs.plumb.dev -n "$wns"
t_ok "rbac: no secret writes" cannot create secrets -n "$wns"
t_ok "rbac: no secrets outside the watched ns" cannot get secrets -n "$other"
t_ok "rbac: no gitsyncs outside the watched ns" cannot list gitsyncs.plumb.dev -n "$other"
t_ok "rbac: create a lease in its ns" can create leases.coordination.k8s.io -n "$ns"
t_ok "rbac: update its own lease" can update leases.coordination.k8s.io/"$rel" -n "$ns"
t_ok "rbac: not other leases" cannot update leases.coordination.k8s.io/kube-scheduler -n "$ns"
t_ok "rbac: no leases elsewhere" cannot create leases.coordination.k8s.io -n "$other"
t_ok "rbac: management target rules" can patch configmaps -n "$other"
t_ok "rbac: management target narrowed" cannot create deployments.apps -n "$other"
t_ok "rbac: inventory configmaps" can create configmaps -n "$ns"
t_ok "rbac: inventory namespace" can create namespaces
t_ok "rbac: impersonate service accounts of the management target namespace" can impersonate serviceaccounts -n "$ns"
t_ok "rbac: no service accounts of other namespaces" cannot impersonate serviceaccounts -n "$other"
t_ok "rbac: no users impersonated" cannot impersonate users
t_ok "rbac: no groups impersonated" cannot impersonate groups

plumbd_as "$rel" "$wns" --namespace="$wns"

t_ok "helm uninstall" h uninstall "$rel" -n "$ns"
while read -r kind name namespace; do
	t_fails "removed: $kind $name" "NotFound|not found" exists "$kind" "$name" "$namespace"
done <"$tmp/objects"
t_eq "no release left" "" "$(h list -n "$ns" -q)"

# --- copies that must stay identical --------------------------------------------
t_eq "chart crds/ has the same files as manifests/crds/" "$(cd "$root/manifests/crds" && ls)" "$(cd "$chart/crds" && ls)"
for f in "$root"/manifests/crds/*.yaml; do
	t_ok "chart crds/$(basename "$f") identical" cmp "$f" "$chart/crds/$(basename "$f")"
done
t_ok "gen-manifests" bash "$root/hack/gen-manifests.sh" "$tmp/gen"
t_ok "manifests/install/plumb.yaml is the default render (run hack/gen-manifests.sh)" \
	diff -u "$tmp/gen/plumb.yaml" "$root/manifests/install/plumb.yaml"
t_eq "manifests/install holds only plumb.yaml" plumb.yaml "$(ls "$root/manifests/install")"
# The plain file, moved to a namespace of its own, on the apiserver (dry run).
sed "s/plumb-system/$ns/g" "$root/manifests/install/plumb.yaml" >"$tmp/plain.yaml"
t_ok "plain manifests accepted by the apiserver (dry run)" k apply --dry-run=server -f "$tmp/plain.yaml"
t_eq "plain manifests: Namespace, CRDs, then the chart" "CustomResourceDefinition/clusters.plumb.dev
CustomResourceDefinition/gitsyncs.plumb.dev
Namespace/plumb-system" "$(kinds "$root/manifests/install/plumb.yaml" | grep -E '^(Namespace|CustomResourceDefinition)/')"

t_done
