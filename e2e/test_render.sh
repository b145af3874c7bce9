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
mkdir -p "$WORKTREE/components/tier"
cat >"$WORKTREE/components/tier/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
patches:
- patch: |-
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: app}
    data: {tier: web}
EOF
for env in staging prod; do
	cat >"$WORKTREE/overlays/$env/kustomization.yaml" <<-EOF
		namespace: $TNS
		labels: [{pairs: {env: $env}}]
		resources: [../../base]
		components: [../../components/tier]
		patches: [{path: patch.yaml}]
		replacements:
		- source: {kind: ConfigMap, name: app, fieldPath: data.mode}
		  targets: [{select: {kind: ConfigMap, name: app}, fieldPaths: [data.copied], options: {create: true}}]
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
  widgets: {{ .Capabilities.APIVersions.Has "shop.example.com/v1/Widget" | quote }}
EOF
# one overlay for both clusters: rendered once per commit
mkdir -p "$WORKTREE/shared"
cat >"$WORKTREE/shared/kustomization.yaml" <<EOF
namespace: $TNS
nameSuffix: -shared
resources: [../base]
EOF
c1_id=$(commit "overlays and a chart")
# c3 serves Widgets, c2 does not: the chart sees it in .Capabilities.APIVersions
write_widget_crd "$WORK/widget-crd.yaml" shop.example.com
kc c3 apply -f "$WORK/widget-crd.yaml" >/dev/null
kc c3 wait --for=condition=Established --timeout=30s crd/widgets.shop.example.com >/dev/null

apply_gitsync kz '"overlays/${CLUSTER_LABEL_env}"' 10m "targets: {clusterNames: [c2, c3]}"
apply_gitsync hm chart 10m "targets: {clusterNames: [c2, c3]}" "targetNamespace: $TNS" \
	'helm: {releaseName: shop, valuesFiles: ["chart/values-${CLUSTER_LABEL_env}.yaml"], values: {size: "3"}}'
apply_gitsync rb remote 10m "targets: {clusterNames: [c2]}"
apply_gitsync one shared 10m "targets: {clusterNames: [c2, c3]}"

start_plumbd main --kustomize-bin "$kustomize" --helm-bin "$helm_bin/helm" --render-timeout 20s \
	--render-max-output 1Mi
log="$WORK/plumbd-main.log"
t_ok "start-up names the render tools" grep -q '"render tool found".*"kustomize"' "$log"

# objects of `kustomize build DIR` as a JSON list
built() {
	"$kustomize" build "$WORKTREE/$1" | kc c1 create --dry-run=client -o json -f - |
		jq -c 'if .kind == "List" then .items[] else . end'
}
# an object as Git meant it: without what the API server and plumb add
# (plumb's two labels and its desired-hash annotation)
as_meant='{apiVersion, kind, data, metadata: (.metadata | {name, namespace,
	labels: ((.labels // {}) | del(.["app.kubernetes.io/managed-by"], .["plumb.dev/gitsync"])),
	annotations: ((.annotations // {}) | del(.["plumb.dev/desired-hash"]))})}'
# every ConfigMap of the overlay is in cluster C, the same object
same_as_build() { # CLUSTER OVERLAY-DIR
	local o name n=0
	while read -r o; do
		name=$(jq -r .metadata.name <<<"$o")
		[[ $(kc "$1" -n "$TNS" get cm "$name" -o json 2>/dev/null | jq -cS "$as_meant") == \
			$(jq -cS "$as_meant" <<<"$o") ]] || return 1
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
t_eq "1 the component's patch, the overlay's labels, a replacement" "web prod prod" \
	"$(kc c3 -n "$TNS" get cm app -o jsonpath='{.data.tier} {.metadata.labels.env} {.data.copied}')"
t_eq "1 owned by the GitSync" "$NS.kz" "$(kc c2 -n "$TNS" get cm app -o jsonpath='{.metadata.labels.plumb\.dev/gitsync}')"
old_gen=$(built overlays/staging | jq -r 'select(.metadata.name | startswith("settings-")) | .metadata.name')
t_ok "1 generated ConfigMap has its hash name" kc c2 -n "$TNS" get cm "$old_gen"

# 2. The chart: values per environment and the cluster's version.
t_ok "2 helm GitSync converges" wait_for 60 synced_at hm "$c1_id"
t_eq "2 values in c2 (staging file, inline over values.yaml)" "yellow 3" \
	"$(kc c2 -n "$TNS" get cm web-shop -o jsonpath='{.data.color} {.data.size}')"
t_eq "2 values in c3 (prod file)" "red 3" "$(kc c3 -n "$TNS" get cm web-shop -o jsonpath='{.data.color} {.data.size}')"

# 2a. Each cluster holds what `helm template` prints with the same inputs.
for c in c2 c3; do
	env=$([[ $c == c2 ]] && echo staging || echo prod)
	v=$(kc "$c" version -o json | jq -r .serverVersion.gitVersion)
	apis=()
	[[ $c == c3 ]] && apis=(--api-versions shop.example.com/v1/Widget)
	want=$("$helm_bin/helm" template shop "$WORKTREE/chart" --namespace "$TNS" --kube-version "$v" "${apis[@]}" \
		--values "$WORKTREE/chart/values-$env.yaml" --set-string size=3 | kc c1 create --dry-run=client -o json -f - |
		jq -cS "$as_meant | .metadata.namespace = null")
	t_eq "2a $c holds helm template of the chart with its values and version" "$want" \
		"$(kc "$c" -n "$TNS" get cm web-shop -o json | jq -cS "$as_meant | .metadata.namespace = null")"
done

# 2b. The chart saw each cluster's own API versions (discovery).
t_eq "2b c3 serves Widgets: the chart saw it" true "$(kc c3 -n "$TNS" get cm web-shop -o jsonpath='{.data.widgets}')"
t_eq "2b c2 does not: the chart saw that too" false "$(kc c2 -n "$TNS" get cm web-shop -o jsonpath='{.data.widgets}')"

# 2c. One overlay for two clusters: one kustomize run for the commit.
t_ok "2c the shared overlay converges" wait_for 60 synced_at one "$c1_id"
ran() { # GITSYNC COMMIT: kustomize/helm runs plumbd made (not the cache's)
	grep '"msg":"rendered"' "$log" | jq -r --arg g "$NS/$1" --arg c "$2" \
		'select(.gitsync == $g and .commit == $c and .cached == "false") | .cluster' | wc -l
}
t_eq "2c one run for both clusters" 1 "$(ran one "$c1_id")"
t_ok "2c the other cluster took it from the cache" \
	bash -c "grep '\"msg\":\"rendered\"' '$log' | grep -q '\"gitsync\":\"$NS/one\".*\"cached\":\"true\"'"
t_eq "2c both clusters have it" "app-shared app-shared" \
	"$(kc c2 -n "$TNS" get cm app-shared -o jsonpath='{.metadata.name}') $(kc c3 -n "$TNS" get cm app-shared -o jsonpath='{.metadata.name}')"
t_eq "2c per-cluster overlays: a run each" 2 "$(ran kz "$c1_id")"
t_ok "2c the run's time and peak RSS are logged" bash -c "grep '\"msg\":\"rendered\"' '$log' | grep '\"gitsync\":\"$NS/one\"' | head -1 | jq -e '(.seconds | tonumber) > 0 and (.peak_rss_kb | tonumber) > 1000' >/dev/null"

# 2d. plumbctl renders what plumbd applied: diff from Git finds nothing, for
# kustomize and helm (the same version and API versions) on both clusters.
PC=$BUILD/plumbctl
KC1=$PLUMB_TESTBED/clusters/c1/kubeconfig
pcdiff() { "$PC" diff "$@" -n "$NS" --kubeconfig "$KC1" --cache-dir "$WORK/ctl-cache" \
	--kustomize-bin "$kustomize" --helm-bin "$helm_bin/helm" >"$WORK/pc.out" 2>&1; echo $?; }
for g in kz hm; do
	for cl in c2 c3; do
		t_eq "2d plumbctl diff --gitsync $g --cluster $cl: no differences" 0 "$(pcdiff --gitsync "$g" --cluster "$cl")"
	done
done
t_eq "2d plumbctl diff of the checkout: no differences" 0 "$(pcdiff "$WORKTREE" --gitsync kz --cluster c3)"
sed -i 's/mode: prod/mode: prod-next/' "$WORKTREE/overlays/prod/patch.yaml"
t_eq "2d a local change to the prod overlay: differences" 1 "$(pcdiff "$WORKTREE" --gitsync kz --cluster c3)"
t_ok "2d the diff shows it" grep -q '^+  mode: prod-next' "$WORK/pc.out"
t_eq "2d the staging cluster is not concerned" 0 "$(pcdiff "$WORKTREE" --gitsync kz --cluster c2)"
git -C "$WORKTREE" checkout -q overlays/prod/patch.yaml
gen_c2=$(kc c2 -n "$TNS" get cm -o name | sed -n 's|^configmap/\(settings-.*\)|\1|p')
"$PC" render "$WORKTREE/overlays/staging" --cluster-name c2 --cluster-label env=staging \
	--kustomize-bin "$kustomize" >"$WORK/render.out" 2>&1
t_ok "2d plumbctl render of the overlay names the generated ConfigMap plumbd applied" \
	grep -q "^  name: $gen_c2\$" "$WORK/render.out"
t_ok "2d plumbctl render says where the objects come from" grep -q '^# Source: overlays/staging (kustomize build)' "$WORK/render.out"
kv3=$(kc c3 -n "$TNS" get cm web-shop -o jsonpath='{.data.kube}')
"$PC" render "$WORKTREE/chart" --cluster-name c3 --cluster-label env=prod --release-name shop \
	--values 'chart/values-${CLUSTER_LABEL_env}.yaml' --namespace "$TNS" --kube-version "$kv3" \
	--api-versions shop.example.com/v1/Widget --helm-bin "$helm_bin/helm" >"$WORK/render.out" 2>&1
t_ok "2d plumbctl render of the chart: prod's values" grep -q '^  color: red' "$WORK/render.out"
t_ok "2d ... the version given" grep -q "^  kube: $kv3" "$WORK/render.out"
t_ok "2d ... the API versions given" grep -q '^  widgets: "true"' "$WORK/render.out"
t_ok "2d plumbctl vet of the overlay renders it first" bash -c "'$PC' vet '$WORKTREE/overlays/prod' --kustomize-bin '$kustomize' 2>&1 | grep -q 'overlays/prod (kustomize build), ok'"
t_eq "2d plumbctl vet of the remote base fails" 1 "$("$PC" vet "$WORKTREE/remote" --kustomize-bin "$kustomize" >/dev/null 2>&1; echo $?)"

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

# 4b. Steady state: no write to either cluster, no drift, while plumbd runs on.
t0=$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)
sleep 8
t_eq "4b steady state: no write in c2" 0 "$(writes_since c2 "$t0" | grep -c .)"
t_eq "4b steady state: no write in c3" 0 "$(writes_since c3 "$t0" | grep -c .)"
t_eq "4b no drift reported" "0 0" "$(gs_jq kz '[.status.clusters[] | .drifted.count // 0] | map(tostring) | join(" ")')"

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

# 6. Refusals: a path out of the repository, a chart whose dependency is not
# vendored, output over --render-max-output, a render past --render-timeout
# (killed; meanwhile plumbd answers and the other GitSyncs sync on).
mkdir -p "$WORKTREE/escape" "$WORKTREE/dep" "$WORKTREE/slow/templates" "$WORKTREE/loud/templates"
printf 'resources: [../../../etc]\n' >"$WORKTREE/escape/kustomization.yaml"
cat >"$WORKTREE/dep/Chart.yaml" <<EOF
apiVersion: v2
name: dep
version: 0.1.0
dependencies:
- {name: redis, version: 17.0.0, repository: "https://charts.example.com"}
EOF
printf 'apiVersion: v2\nname: slow\nversion: 0.1.0\n' >"$WORKTREE/slow/Chart.yaml"
cat >"$WORKTREE/slow/templates/cm.yaml" <<'EOF'
{{- range $i := until 100000 }}{{ range $j := until 100000 }}{{ end }}{{ end }}
apiVersion: v1
kind: ConfigMap
metadata: {name: slow}
EOF
printf 'apiVersion: v2\nname: loud\nversion: 0.1.0\n' >"$WORKTREE/loud/Chart.yaml"
cat >"$WORKTREE/loud/templates/cm.yaml" <<'EOF'
{{- range $i := until 1500 }}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: loud-{{ $i }}}
data: {pad: {{ repeat 1000 "x" | quote }}}
{{- end }}
EOF
c4_id=$(commit "refusals")
apply_gitsync esc escape 10m "targets: {clusterNames: [c2]}"
apply_gitsync dep dep 10m "targets: {clusterNames: [c2]}" "targetNamespace: $TNS"
apply_gitsync loud loud 10m "targets: {clusterNames: [c2]}" "targetNamespace: $TNS"
stall_msg() { gs_jq "$1" '.status.conditions[] | select(.type == "Stalled") | .message'; }
t_ok "6 a path out of the repository stalls" wait_for 60 stalled_with esc RenderFailed ||
	{ gs_jq esc .status; grep "/esc\"" "$log" | tail -20; }
t_ok "6 ... saying so" contains "leaves the repository" "$(stall_msg esc)"
t_ok "6 an unvendored dependency stalls" wait_for 60 stalled_with dep RenderFailed
t_ok "6 ... naming charts/" contains "charts/" "$(stall_msg dep)"
t_ok "6 output over --render-max-output stalls" wait_for 60 stalled_with loud RenderFailed
t_ok "6 ... naming the cap" contains "output over the cap of 1048576 bytes" "$(stall_msg loud)"
t_eq "6 nothing of it was applied" 0 "$(kc c2 -n "$TNS" get cm -o name | grep -c 'loud-')"

apply_gitsync slow slow 10m "targets: {clusterNames: [c2]}" "targetNamespace: $TNS"
helm_running() { pgrep -f "^$helm_bin/helm template" >/dev/null; }
t_ok "6 the slow render runs" wait_for 20 helm_running
sed -i -E 's/LEVEL=[a-z]+/LEVEL=trace/' "$WORKTREE/overlays/staging/kustomization.yaml"
c5_id=$(commit "staging: log level trace")
request kz
t_ok "6 while helm runs past its time, the kustomize GitSync syncs a new commit" wait_for 18 synced_at kz "$c5_id"
t_ok "6 ... and the slow one is still running" helm_running
t_ok "6 plumbd answers meanwhile" curl -sf "http://127.0.0.1:$HEALTH_PORT/healthz"
t_ok "6 the slow render is killed at --render-timeout" wait_for 40 stalled_with slow RenderFailed
t_ok "6 ... saying so" contains "killed after 20s, the render timeout" "$(stall_msg slow)"
t_ok "6 no render process is left" bash -c "! pgrep -f '^$helm_bin/helm template'"

t_done
