#!/usr/bin/env bash
# plumb's image, run: plumbd from the built image's file system (make image)
# against the test bed, the way the chart's pod runs it.
#  - the image's config: user 65532:65532, entrypoint plumbd, PATH with
#    kustomize and helm, the cache volume;
#  - its contents: no shell, no package manager (no apt, no dpkg, no
#    perl), nothing in /usr/bin and /usr/sbin, exactly plumbd, plumbctl,
#    kustomize and helm in /usr/local/bin, every library they load inside
#    the image (its own ld.so --list), /tmp 1777, /var/cache/plumb 65532's;
#  - plumbd, kustomize and helm print their versions in the image;
#  - plumbd in an unpacked copy of the image (buildah from + mount) under
#    chroot, as UID 65532, read-only root, tmpfs at /tmp and at the cache
#    (the chart's emptyDirs), /proc and a /dev of null, zero, random and
#    urandom, nothing in the environment but the image's: it finds
#    kustomize and helm in PATH, syncs a Kustomize GitSync
#    (overlays/${CLUSTER_LABEL_env}, a patch and a configMapGenerator) and a
#    Helm GitSync (values per environment, .Capabilities.KubeVersion) to c2
#    and c3 over HTTPS from the test Git server, equal to what the image's
#    kustomize builds; renders leave nothing in /tmp; exits 0 on SIGTERM;
#    with its cache on the root it fails: read-only.
#
#   make test-image        (make image, then this)
#   bash tests/image/test_image.sh
#
# Not part of make test (the image build takes minutes). Needs root and
# buildah. PLUMB_IMAGE names the image (default: hack/build-image.sh --tag).
# With PLUMB_TESTBED (and PLUMB_K8S_BIN) it uses that running test bed,
# else it brings up its own three clusters and stops them at the end.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tests/lib.sh"
image=${PLUMB_IMAGE:-$(bash "$root/hack/build-image.sh" --tag)}
bh() { buildah --storage-driver vfs "$@"; }

bh inspect --type image "$image" >/dev/null 2>&1 || { echo "FAIL: no image $image: run make image"; exit 1; }
own_testbed=
if [[ -z ${PLUMB_TESTBED:-} ]]; then
	export PLUMB_K8S_BIN PLUMB_TESTBED
	PLUMB_K8S_BIN=${PLUMB_K8S_BIN:-$(bash "$root/hack/build-k8s.sh")} || { echo "FAIL: no Kubernetes binaries"; exit 1; }
	PLUMB_TESTBED=$(mktemp -d /tmp/plumb-testbed.XXXXXX)
	rmdir "$PLUMB_TESTBED"
	own_testbed=1
	trap 'bash "$root/hack/cluster.sh" down' EXIT
	bash "$root/hack/cluster.sh" up 3 || { echo "FAIL: the test bed did not come up"; exit 1; }
fi
: "${PLUMB_K8S_BIN:=$(bash "$root/hack/build-k8s.sh")}"
export PLUMB_K8S_BIN
source "$root/e2e/lib.sh"

ctr=
image_cleanup() {
	e2e_cleanup # kills plumbd first: its mount namespace holds the container's root
	if [[ -n $ctr ]]; then
		sleep 0.5
		bh umount "$ctr" >/dev/null 2>&1
		bh rm "$ctr" >/dev/null 2>&1
	fi
	[[ -n $own_testbed ]] && bash "$root/hack/cluster.sh" down
	return 0
}
trap image_cleanup EXIT

# --- the image's config -------------------------------------------------------
config=$(bh inspect --type image "$image" | jq -c .OCIv1.config)
t_eq "user" "65532:65532" "$(jq -r .User <<<"$config")"
t_eq "entrypoint" '["/usr/local/bin/plumbd"]' "$(jq -c .Entrypoint <<<"$config")"
t_eq "cmd" '["--cache-dir=/var/cache/plumb"]' "$(jq -c .Cmd <<<"$config")"
t_eq "cache volume" '["/var/cache/plumb"]' "$(jq -c '.Volumes | keys' <<<"$config")"
mapfile -t image_env < <(jq -r '.Env[]' <<<"$config")
image_path=$(printf '%s\n' "${image_env[@]}" | sed -n 's/^PATH=//p')
t_eq "PATH" "/usr/local/bin:/usr/bin" "$image_path"

# --- its contents -------------------------------------------------------------
ctr=$(bh from --pull=never --quiet "$image") || { echo "FAIL: buildah from $image"; t_done; exit 1; }
mnt=$(bh mount "$ctr")
for f in bin/sh bin/bash bin/dash usr/bin/sh usr/bin/bash usr/bin/dash usr/bin/busybox \
	usr/bin/apt usr/bin/apt-get usr/bin/dpkg usr/bin/dpkg-query usr/bin/perl var/lib/dpkg/status usr/lib/apt; do
	t_ok "no /$f" test ! -e "$mnt/$f" -a ! -L "$mnt/$f"
done
t_eq "nothing in /usr/bin, /usr/sbin" "" "$(find "$mnt/usr/bin/" "$mnt/usr/sbin/" -mindepth 1 -printf '%P ')"
t_eq "/usr/local/bin" "helm kustomize plumbctl plumbd" "$(ls "$mnt/usr/local/bin" | tr '\n' ' ' | sed 's/ $//')"
t_eq "/tmp is 1777" "1777 0 0" "$(stat -c '%a %u %g' "$mnt/tmp")"
t_eq "/var/cache/plumb is 65532's" "65532 65532" "$(stat -c '%u %g' "$mnt/var/cache/plumb")"
t_ok "CA bundle" test -s "$mnt/etc/ssl/certs/ca-certificates.crt"
t_ok "passwd has plumb as 65532" grep -qx 'plumb:x:65532:65532:plumb:/nonexistent:/usr/sbin/nologin' "$mnt/etc/passwd"
for b in plumbd plumbctl; do
	t_ok "$b: every library inside the image (ld.so --list)" bash -c \
		"out=\$(chroot '$mnt' /lib64/ld-linux-x86-64.so.2 --list /usr/local/bin/$b) && ! grep -q 'not found' <<<\"\$out\" && grep -q libgit2 <<<\"\$out\""
done
for b in kustomize helm; do
	t_ok "$b is static" bash -c "file -L '$mnt/usr/local/bin/$b' | grep -q 'statically linked'"
done
t_fails "no /bin/sh to run" "No such file or directory" chroot "$mnt" /bin/sh -c true
echo "image: $(du -sb "$mnt" | awk '{printf "%.1f MiB", $1 / 1048576}') in $(find "$mnt" -xdev -type f | wc -l) files," \
	"$(ls "$mnt/var/lib/dpkg/status.d" | wc -l) Debian packages: $(ls "$mnt/var/lib/dpkg/status.d" | tr '\n' ' ')"

# What the pod needs that a container runtime provides or the chart mounts:
# mount points for /proc and /dev, the management kubeconfig (in the pod:
# the service account). They go into this container's copy, not the image.
mkdir -p "$mnt/proc" "$mnt/dev" "$mnt/test/cfg"
install -m 0644 "$PLUMB_TESTBED/clusters/c1/kubeconfig" "$mnt/test/kubeconfig"
write_app "$mnt/test/cfg/app.yaml" team-a # for plumbctl vet

# pod CMD…: CMD in the image's root as the pod runs it: read-only root, tmpfs
# at /tmp and /var/cache/plumb, /proc, a /dev, UID/GID 65532 (the image's
# USER), the image's environment and HOME. Every step execs the next, so a
# background pod's $! is the command's own pid.
pod=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin unshare -m /bin/bash -c '
	r=$1 n=$2
	envs=("${@:3:n}")
	shift $((n + 2))
	mount --bind "$r" "$r" && mount -o remount,bind,ro "$r" &&
	mount -t tmpfs -o mode=1777 tmpfs "$r/tmp" &&
	mount -t tmpfs -o uid=65532,gid=65532,mode=0700 tmpfs "$r/var/cache/plumb" &&
	mount -t proc proc "$r/proc" &&
	mount -t tmpfs -o mode=0755 tmpfs "$r/dev" || exit 1
	for d in null zero random urandom; do
		: >"$r/dev/$d" && mount --bind "/dev/$d" "$r/dev/$d" || exit 1
	done
	exec env -i "${envs[@]}" /usr/sbin/chroot --userspec=65532:65532 "$r" "$@"' pod "$mnt"
	$((${#image_env[@]} + 1)) "${image_env[@]}" HOME=/nonexistent)

want_version=$(sed -nE 's/.*org\.opencontainers\.image\.version="([^"]+)".*/\1/p' "$root/Dockerfile")
t_ok "plumbd --version in the image" bash -c "$(printf '%q ' "${pod[@]}") /usr/local/bin/plumbd --version | grep -qF '$want_version'"
kz_version=$(awk '$1 == "require" && $2 == "sigs.k8s.io/kustomize/kustomize/v5" {print $3}' "$root/hack/kustomize/go.mod")
helm_version=$(awk '$1 == "require" && $2 == "helm.sh/helm/v3" {print $3}' "$root/hack/helm/go.mod")
t_eq "kustomize version in the image (hack/kustomize/go.mod)" "$kz_version" "$("${pod[@]}" kustomize version 2>&1)"
t_eq "helm version in the image (hack/helm/go.mod)" "$helm_version" "$("${pod[@]}" helm version --short 2>&1)"
t_ok "plumbctl vet in the image" "${pod[@]}" plumbctl vet /test/cfg

# --- a Kustomize and a Helm GitSync, synced by plumbd from the image --------------
TNS=$NS-app
register_cluster c2 "env: staging"
register_cluster c3 "env: prod"
kc c2 create namespace "$TNS" >/dev/null
kc c3 create namespace "$TNS" >/dev/null
new_repo image
# base/ and overlays/{staging,prod} (namespace, a patch, a configMapGenerator)
mkdir -p "$WORKTREE/base" "$WORKTREE/overlays/staging" "$WORKTREE/overlays/prod" "$WORKTREE/chart/templates"
echo 'resources: [app.yaml]' >"$WORKTREE/base/kustomization.yaml"
echo '{apiVersion: v1, kind: ConfigMap, metadata: {name: app}, data: {mode: base}}' >"$WORKTREE/base/app.yaml"
for env in staging prod; do
	printf '%s\n' "namespace: $TNS" 'resources: [../../base]' 'patches: [{path: patch.yaml}]' \
		"configMapGenerator: [{name: settings, literals: [ENV=$env]}]" >"$WORKTREE/overlays/$env/kustomization.yaml"
	echo "{apiVersion: v1, kind: ConfigMap, metadata: {name: app}, data: {mode: $env}}" >"$WORKTREE/overlays/$env/patch.yaml"
done
# a chart with values per environment that reads the cluster's version
printf 'apiVersion: v2\nname: web\nversion: 0.1.0\n' >"$WORKTREE/chart/Chart.yaml"
printf 'color: blue\n' >"$WORKTREE/chart/values.yaml"
printf 'color: yellow\n' >"$WORKTREE/chart/values-staging.yaml"
printf 'color: red\n' >"$WORKTREE/chart/values-prod.yaml"
cat >"$WORKTREE/chart/templates/cm.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata: {name: web-{{ .Release.Name }}}
data:
  color: {{ .Values.color | quote }}
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
EOF
id=$(commit "an overlay per environment and a chart")
apply_gitsync kz '"overlays/${CLUSTER_LABEL_env}"' 10m "targets: {clusterNames: [c2, c3]}"
apply_gitsync hm chart 10m "targets: {clusterNames: [c2, c3]}" "targetNamespace: $TNS" \
	'helm: {releaseName: shop, valuesFiles: ["chart/values-${CLUSTER_LABEL_env}.yaml"]}'

log="$WORK/plumbd-image.log"
# start_pod ARGS…: plumbd (the image's entrypoint) in the pod against c1.
start_pod() {
	"${pod[@]}" /usr/local/bin/plumbd --kubeconfig=/test/kubeconfig --namespace="$NS" \
		--metrics-addr=127.0.0.1:0 --health-addr=127.0.0.1:0 --shutdown-timeout=5s --log-level=debug "$@" >"$log" 2>&1 &
	PLUMBD_PID=$!
	e2e_pids+=("$PLUMBD_PID")
}
start_pod --cache-dir=/var/cache/plumb
t_ok "plumbd started in the image" wait_for 20 started_line_complete "$log"
HEALTH_PORT=$(grep -m1 '"plumbd started"' "$log" | jq -r .health_port)
t_ok "finds kustomize in the image's PATH" grep -q '"render tool found".*/usr/local/bin/kustomize' "$log"
t_ok "finds helm in the image's PATH" grep -q '"render tool found".*/usr/local/bin/helm' "$log"
# Whether the kernel gives renders a network namespace here (under chroot
# it refuses a user namespace): printed, not checked, since it depends on
# the host, and in a pod on its seccomp profile.
echo "render network isolation: $(grep -m1 -o '"msg":"renders run[^}]*' "$log")"
t_ok "ready" wait_for 30 curl -fsS "http://127.0.0.1:$HEALTH_PORT/readyz"
t_eq "runs as 65532" "65532 65532" "$(awk '/^Uid:/ {print $2, $3}' "/proc/$PLUMBD_PID/status" 2>/dev/null)"
t_eq "its root is the image's" "$(stat -c %i "$mnt/usr/local/bin/plumbd")" "$(stat -c %i "/proc/$PLUMBD_PID/root/usr/local/bin/plumbd" 2>/dev/null)"

t_ok "kustomize GitSync synced to c2 and c3" wait_for 90 synced_at kz "$id"
# OBJECTS | by_name: {name: data} of a JSON object, List or stream of them
by_name() { jq -s -cS '[.[] | if .kind == "List" then .items[] else . end | {(.metadata.name): .data}] | add'; }
# the ConfigMaps GitSync kz put in CLUSTER are exactly what the image's
# kustomize builds for OVERLAY, with the same data
same_as_build() { # CLUSTER OVERLAY
	local want got
	want=$("$mnt/usr/local/bin/kustomize" build "$WORKTREE/$2" | kc c1 create --dry-run=client -o json -f - | by_name)
	got=$(kc "$1" -n "$TNS" get cm -l "plumb.dev/gitsync=$NS.kz" -o json | by_name)
	echo "want $want"
	echo "got  $got"
	[[ $want == *settings-* && $want == "$got" ]]
}
t_ok "c2 holds kustomize build of overlays/staging" same_as_build c2 overlays/staging
t_ok "c3 holds kustomize build of overlays/prod" same_as_build c3 overlays/prod
t_ok "helm GitSync synced to c2 and c3" wait_for 90 synced_at hm "$id"
t_eq "helm values per environment" "yellow red" \
	"$(kc c2 -n "$TNS" get cm web-shop -o jsonpath='{.data.color}') $(kc c3 -n "$TNS" get cm web-shop -o jsonpath='{.data.color}')"
for c in c2 c3; do
	t_eq "helm rendered with $c's version" "$(kc "$c" version -o json | jq -r .serverVersion.gitVersion)" \
		"$(kc "$c" -n "$TNS" get cm web-shop -o jsonpath='{.data.kube}')"
done
t_eq "renders leave nothing in /tmp" "" "$(ls -A "/proc/$PLUMBD_PID/root/tmp" 2>&1)"
t_ok "the mirror is in the cache tmpfs" test -n "$(ls -A "/proc/$PLUMBD_PID/root/var/cache/plumb" 2>/dev/null)"
kill -TERM "$PLUMBD_PID"
wait "$PLUMBD_PID"
t_eq "exits 0 on SIGTERM" 0 "$?"
[[ $t_failed -gt 0 ]] && tail -30 "$log"

start_pod --cache-dir=/cache
t_ok "cache on the root fails: read-only" wait_for 20 grep -qi "read-only file system" "$log"
kill -TERM "$PLUMBD_PID" 2>/dev/null
wait "$PLUMBD_PID" 2>/dev/null

t_done
