#!/usr/bin/env bash
# Rendered GitSyncs end to end: a Kustomize repository (base/ and
# overlays/{staging,prod} with a patch and a configMapGenerator) synced by one
# GitSync whose path is overlays/${CLUSTER_LABEL_env} to c2 (env=staging) and
# c3 (env=prod); each cluster gets what `kustomize build` of its overlay
# prints; a generator change prunes the old generated ConfigMap; a remote
# base is refused. A Helm chart in the same repository: values files per
# environment reach both clusters with their server version, and a template
# error stalls the GitSync (RenderFailed, helm's message) with nothing
# changed in the clusters. The real kustomize and helm binaries
# (hack/build-kustomize.sh, hack/build-helm.sh).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/tests/lib.sh"
source "$root/e2e/lib.sh"

kustomize_bin=$(bash "$root/hack/build-kustomize.sh") || { echo "FAIL: could not build kustomize"; exit 1; }
helm_bin=$(bash "$root/hack/build-helm.sh") || { echo "FAIL: could not build helm"; exit 1; }
kustomize="$kustomize_bin/kustomize"

TNS=$NS-app
register_cluster c2 "env: staging"
register_cluster c3 "env: prod"
kc c2 create namespace "$TNS" >/dev/null
kc c3 create namespace "$TNS" >/dev/null
new_repo render

mkdir -p "$WORKTREE/base" "$WORKTREE/overlays/staging" "$WORKTREE/overlays/prod" "$WORKTREE/remote"
cat >"$WORKTREE/base/kustomization.yaml" <<EOF
resources: [app.yaml]
EOF
cat >"$WORKTREE/base/app.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: app}
data: {mode: base, replicas: "1"}
EOF
for env in staging prod; do
	cat >"$WORKTREE/overlays/$env/kustomization.yaml" <<-EOF
		namespace: $TNS
		resources: [../../base]
		patches: [{path: patch.yaml}]
		configMapGenerator:
		- name: settings
		  literals: [ENV=$env, LEVEL=info]
	EOF
	cat >"$WORKTREE/overlays/$env/patch.yaml" <<-EOF
		apiVersion: v1
		kind: ConfigMap
		metadata: {name: app}
		data: {mode: $env}
	EOF
done
cat >"$WORKTREE/remote/kustomization.yaml" <<EOF
resources: [github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0]
EOF

# the chart: values per environment, a template that reads the cluster's version
mkdir -p "$WORKTREE/chart/templates"
cat >"$WORKTREE/chart/Chart.yaml" <<EOF
apiVersion: v2
name: web
version: 0.1.0
EOF
printf 'color: blue\nsize: "1"\n' >"$WORKTREE/chart/values.yaml"
printf 'color: yellow\n' >"$WORKTREE/chart/values-staging.yaml"
printf 'color: red\n' >"$WORKTREE/chart/values-prod.yaml"
cat >"$WORKTREE/chart/templates/_helpers.tpl" <<'EOF'
{{- define "web.name" -}}web-{{ .Release.Name }}{{- end -}}
EOF
cat >"$WORKTREE/chart/templates/cm.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "web.name" . }}
data:
  color: {{ .Values.color | quote }}
  size: {{ .Values.size | quote }}
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
EOF
c1_id=$(commit "overlays and a chart")

apply_gitsync kz '"overlays/${CLUSTER_LABEL_env}"' 10m "targets: {clusterNames: [c2, c3]}"
apply_gitsync hm chart 10m "targets: {clusterNames: [c2, c3]}" "targetNamespace: $TNS" \
	'helm: {releaseName: shop, valuesFiles: ["chart/values-${CLUSTER_LABEL_env}.yaml"], values: {size: "3"}}'
apply_gitsync rb remote 10m "targets: {clusterNames: [c2]}"

start_plumbd main --kustomize-bin "$kustomize" --helm-bin "$helm_bin/helm"
log="$WORK/plumbd-main.log"
t_ok "start-up names the render tools" grep -q '"render tool found".*"kustomize"' "$log"

# objects of `kustomize build DIR` as a JSON list
built() {
	"$kustomize" build "$WORKTREE/$1" | kc c1 create --dry-run=client -o json -f - |
		jq -c 'if .kind == "List" then .items[] else . end'
}
# every ConfigMap of the overlay is in cluster C with the same data
same_as_build() { # CLUSTER OVERLAY-DIR
	local o name n=0
	while read -r o; do
		name=$(jq -r .metadata.name <<<"$o")
		[[ $(kc "$1" -n "$TNS" get cm "$name" -o json 2>/dev/null | jq -cS .data) == $(jq -cS .data <<<"$o") ]] || return 1
		n=$((n + 1))
	done < <(built "$2")
	((n == 2)) # app and the generated settings
}
contains() { [[ $2 == *"$1"* ]]; }
# request GITSYNC…: asks plumbd to fetch now (the annotation plumbctl sync sets)
request() {
	local g
	for g in "$@"; do
		kc c1 -n "$NS" annotate --overwrite gitsync "$g" "plumb.dev/requested-at=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" >/dev/null
	done
}

# 1. Each cluster gets its own overlay, equal to kustomize build.
t_ok "1 kustomize GitSync converges" wait_for 60 synced_at kz "$c1_id"
t_ok "1 c2 holds kustomize build of overlays/staging" same_as_build c2 overlays/staging
t_ok "1 c3 holds kustomize build of overlays/prod" same_as_build c3 overlays/prod
t_eq "1 patched per overlay" "staging prod" \
	"$(kc c2 -n "$TNS" get cm app -o jsonpath='{.data.mode}') $(kc c3 -n "$TNS" get cm app -o jsonpath='{.data.mode}')"
t_eq "1 owned by the GitSync" "$NS.kz" "$(kc c2 -n "$TNS" get cm app -o jsonpath='{.metadata.labels.plumb\.dev/gitsync}')"
old_gen=$(built overlays/staging | jq -r 'select(.metadata.name | startswith("settings-")) | .metadata.name')
t_ok "1 generated ConfigMap has its hash name" kc c2 -n "$TNS" get cm "$old_gen"

# 2. The chart: values per environment and the cluster's version.
t_ok "2 helm GitSync converges" wait_for 60 synced_at hm "$c1_id"
t_eq "2 values in c2 (staging file, inline over values.yaml)" "yellow 3" \
	"$(kc c2 -n "$TNS" get cm web-shop -o jsonpath='{.data.color} {.data.size}')"
t_eq "2 values in c3 (prod file)" "red 3" "$(kc c3 -n "$TNS" get cm web-shop -o jsonpath='{.data.color} {.data.size}')"

# 3. A remote base is refused; nothing is applied.
stalled_with() { # GITSYNC REASON
	[[ $(gs_jq "$1" '.status.conditions[]? | select(.type == "Stalled") | .reason') == "$2" ]]
}
t_ok "3 remote base stalls the GitSync" wait_for 30 stalled_with rb RenderFailed
t_ok "3 the message says why" contains "refuses remote bases" \
	"$(gs_jq rb '.status.conditions[] | select(.type == "Stalled") | .message')"
t_eq "3 its cluster entry is Failed" Failed "$(cluster_state rb c2)"

# 4. A generator change: the new generated ConfigMap, the old one pruned.
sed -i 's/LEVEL=info/LEVEL=debug/' "$WORKTREE/overlays/staging/kustomization.yaml"
echo "color: green" >"$WORKTREE/chart/values-staging.yaml"
c2_id=$(commit "generator and values change")
request kz hm
t_ok "4 both GitSyncs converge" wait_for 60 synced_at kz "$c2_id"
t_ok "4 c2 holds the new build" same_as_build c2 overlays/staging
new_gen=$(built overlays/staging | jq -r 'select(.metadata.name | startswith("settings-")) | .metadata.name')
t_ok "4 the generated name changed" test "$old_gen" != "$new_gen"
t_ok "4 the old generated ConfigMap is pruned" wait_for 20 bash -c "! $PLUMB_K8S_BIN/kubectl --kubeconfig $PLUMB_TESTBED/clusters/c2/kubeconfig -n $TNS get cm $old_gen"
t_ok "4 prod untouched by the staging change" same_as_build c3 overlays/prod
t_ok "4 helm values change reaches c2" wait_for 60 synced_at hm "$c2_id"
t_eq "4 new color in c2, c3 unchanged" "green red" \
	"$(kc c2 -n "$TNS" get cm web-shop -o jsonpath='{.data.color}') $(kc c3 -n "$TNS" get cm web-shop -o jsonpath='{.data.color}')"
for c in c2 c3; do
	v=$(kc "$c" version -o json | jq -r .serverVersion.gitVersion)
	t_eq "4 .Capabilities.KubeVersion is $c's version" "$v" "$(kc "$c" -n "$TNS" get cm web-shop -o jsonpath='{.data.kube}')"
done

# 5. A template error stalls the helm GitSync with helm's message; nothing changes.
rv2=$(kc c2 -n "$TNS" get cm web-shop -o jsonpath='{.metadata.resourceVersion}')
rv3=$(kc c3 -n "$TNS" get cm web-shop -o jsonpath='{.metadata.resourceVersion}')
sed -i 's/size: {{ .Values.size | quote }}/size: {{ .Values.size | nosuchfunc }}/' "$WORKTREE/chart/templates/cm.yaml"
echo "color: purple" >"$WORKTREE/chart/values-staging.yaml"
c3_id=$(commit "a template error")
request kz hm
t_ok "5 the helm GitSync stalls" wait_for 60 stalled_with hm RenderFailed
msg=$(gs_jq hm '.status.conditions[] | select(.type == "Stalled") | .message')
t_ok "5 the message carries helm's error" contains "nosuchfunc" "$msg"
t_ok "5 the message names the commit" contains "${c3_id:0:12}" "$msg"
sleep 2
t_eq "5 nothing changed in c2" "$rv2 green" \
	"$(kc c2 -n "$TNS" get cm web-shop -o jsonpath='{.metadata.resourceVersion} {.data.color}')"
t_eq "5 nothing changed in c3" "$rv3" "$(kc c3 -n "$TNS" get cm web-shop -o jsonpath='{.metadata.resourceVersion}')"
t_eq "5 c2 still reports the last good commit" "$c2_id" "$(cluster_commit hm c2)"
t_ok "5 the kustomize GitSync syncs on" wait_for 60 synced_at kz "$c3_id"

t_done
