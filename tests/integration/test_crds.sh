#!/usr/bin/env bash
# The CRDs in manifests/crds/ on a real apiserver: they install, default what
# they promise, reject invalid specs with a useful message, and print the
# columns users see in `kubectl get`.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tests/lib.sh"
kc="$PLUMB_TESTBED/clusters/c1/kubeconfig"
k() { "$PLUMB_K8S_BIN/kubectl" --kubeconfig "$kc" "$@"; }
ns=crds-$RANDOM$RANDOM

t_ok "crds apply" k apply -f "$root/manifests/crds/"
t_ok "crds established" k wait --for=condition=Established --timeout=60s crd/gitsyncs.plumb.dev crd/clusters.plumb.dev
k create namespace "$ns" >/dev/null

TARGETS='{clusterSelector: {matchLabels: {env: prod}}}'
gitsync() { # name, ref block, extra spec lines
	cat <<-EOF
	apiVersion: plumb.dev/v1alpha1
	kind: GitSync
	metadata: {name: $1, namespace: $ns}
	spec:
	  git:
	    url: ${URL:-https://git.example.com/platform/config.git}
	    ref: $2
	  targets: $TARGETS
	$3
	EOF
}

t_ok "valid gitsync accepted" k apply -f - < <(gitsync ok '{branch: main}' '')
t_eq "default driftPolicy" Correct "$(k -n "$ns" get gitsync ok -o jsonpath='{.spec.driftPolicy}')"
t_eq "default prune" true "$(k -n "$ns" get gitsync ok -o jsonpath='{.spec.prune}')"
t_eq "default interval" 1m "$(k -n "$ns" get gitsync ok -o jsonpath='{.spec.git.interval}')"
t_eq "default debounce" 1s "$(k -n "$ns" get gitsync ok -o jsonpath='{.spec.debounce}')"
t_eq "default allowEmpty" false "$(k -n "$ns" get gitsync ok -o jsonpath='{.spec.allowEmpty}')"

t_fails "two refs rejected" "exactly one of branch, tag or commit" k apply -f - < <(gitsync two '{branch: main, tag: v1}' '')
t_fails "no ref rejected" "exactly one of branch, tag or commit" k apply -f - < <(gitsync none '{}' '')
t_fails "short commit rejected" "spec.git.ref.commit" k apply -f - < <(gitsync short '{commit: abc}' '')
t_fails "driftPolicy enum" 'Unsupported value: "Fix"' k apply -f - < <(gitsync drift '{branch: main}' '  driftPolicy: Fix')
t_fails "debounce format" "spec.debounce" k apply -f - < <(gitsync db '{branch: main}' '  debounce: soon')
t_fails "interval format" "spec.git.interval" k apply -f - < <(gitsync iv '{branch: main}' '' | sed 's|^    ref:|    interval: 10\n    ref:|')
t_fails "interval floor 10s" "spec.git.interval must be at least 10s" k apply -f - < <(gitsync ivf '{branch: main}' '' | sed 's|^    ref:|    interval: 5s\n    ref:|')
t_fails "timeout ceiling 10m" "spec.git.timeout must be at most 10m" k apply -f - < <(gitsync tof '{branch: main}' '' | sed 's|^    ref:|    timeout: 1h\n    ref:|')
t_ok "interval 10s and timeout 10m accepted" k apply -f - < <(gitsync bounds '{branch: main}' '' | sed 's|^    ref:|    interval: 10s\n    timeout: 10m\n    ref:|')
t_fails "url scheme" "url must be https://, ssh://, file:// or user@host:path" k apply -f - < <(URL=ftp://x/y gitsync url '{branch: main}' '')
t_fails "targets required" "targets needs a clusterSelector or clusterNames" k apply -f - < <(TARGETS='{}'; gitsync tg '{branch: main}' '')
t_fails "path escapes" "path must be relative" k apply -f - < <(gitsync p '{branch: main}' '' | sed 's|^    ref:|    path: ../x\n    ref:|')
t_fails "render enum" 'Unsupported value: "jsonnet"' k apply -f - < <(gitsync rk '{branch: main}' '  render: jsonnet')
t_ok "render and helm accepted" k apply -f - < <(gitsync rh '{branch: main}' '  render: helm
  helm: {chart: charts/web, releaseName: web, valuesFiles: [values.yaml, "env/${CLUSTER_LABEL_env}.yaml"], values: {replicas: 2, image: {tag: v1}}}')
t_eq "default helm.includeCRDs" true "$(k -n "$ns" get gitsync rh -o jsonpath='{.spec.helm.includeCRDs}')"
t_eq "inline values kept" 2 "$(k -n "$ns" get gitsync rh -o jsonpath='{.spec.helm.values.replicas}')"
t_fails "helm releaseName" "spec.helm.releaseName" k apply -f - < <(gitsync rn '{branch: main}' '  helm: {releaseName: Web_1}')
t_fails "helm values file escapes" "a values file must be relative" k apply -f - < <(gitsync rv '{branch: main}' '  helm: {valuesFiles: [../x.yaml]}')
t_ok "scp-style url accepted" k apply -f - < <(URL=git@github.com:org/repo.git gitsync scp '{tag: v1.2.0}' '')
t_ok "serviceAccountName accepted" k apply -f - < <(gitsync sa '{branch: main}' '  serviceAccountName: ci.deployer-1')
t_fails "serviceAccountName must be a service account name" "spec.serviceAccountName" \
	k apply -f - < <(gitsync sab '{branch: main}' '  serviceAccountName: "Deployer:x"')
t_ok "file:// accepted by the CRD (plumbd refuses it without --allow-file-urls)" \
	k apply -f - < <(URL=file:///srv/git/x.git gitsync file '{branch: main}' '')

# Status through the subresource, and the printer columns.
t_ok "status subresource" k -n "$ns" patch gitsync ok --subresource=status --type=merge -p \
	'{"status":{"summary":{"commit":"3f2c1ab","clusters":"2/2","drifted":1},"conditions":[{"type":"Ready","status":"True","reason":"Synced","message":"ok","lastTransitionTime":"2026-11-26T11:00:00Z"}]}}'
header=$(k -n "$ns" get gitsyncs | head -1 | tr -s ' ')
t_eq "gitsync columns" "NAME READY COMMIT CLUSTERS DRIFTED AGE" "$header"
row=$(k -n "$ns" get gitsync ok --no-headers | awk '{print $2, $3, $4, $5}')
t_eq "gitsync row" "True 3f2c1ab 2/2 1" "$row"
t_fails "bad condition reason" "status.conditions\[0\].reason: Invalid value" k -n "$ns" patch gitsync ok --subresource=status --type=merge -p \
	'{"status":{"conditions":[{"type":"Ready","status":"True","reason":"not ok!","message":"","lastTransitionTime":"2026-11-26T11:00:00Z"}]}}'

cat <<EOF | k apply -f - >/dev/null
apiVersion: plumb.dev/v1alpha1
kind: Cluster
metadata: {name: prod-eu, namespace: $ns, labels: {env: prod}}
spec: {kubeConfigSecretRef: {name: prod-eu}}
EOF
t_eq "cluster secret key default" kubeconfig "$(k -n "$ns" get cluster prod-eu -o jsonpath='{.spec.kubeConfigSecretRef.key}')"
t_eq "cluster columns" "NAME READY VERSION AGE" "$(k -n "$ns" get clusters.plumb.dev | head -1 | tr -s ' ')"
t_fails "cluster secret name required" "name: Required value" k apply -f - <<EOF
apiVersion: plumb.dev/v1alpha1
kind: Cluster
metadata: {name: bad, namespace: $ns}
spec: {kubeConfigSecretRef: {key: kc}}
EOF

k delete namespace "$ns" --wait=false >/dev/null 2>&1
t_done
