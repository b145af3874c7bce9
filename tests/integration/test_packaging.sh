#!/usr/bin/env bash
# The Dockerfile, checked without an image build (tests/image/test_image.sh
# runs the built image):
#  - its build stage's recipe (make on only the COPYed paths) builds plumbd
#    and plumbctl, and .dockerignore lets every COPYed path through;
#  - every shared library they load comes from a Debian package of the
#    runtime root that hack/image-rootfs.sh assembles from the runtime
#    stage's RUNTIME_PACKAGES (Depends closure, without RUNTIME_EXCLUDE);
#  - they run in that root, made here by the same script from this
#    machine's packages (Debian 12 too), with no shell, dpkg, apt or perl
#    in it: mounted read-only, tmpfs at /tmp and the cache dir, as UID
#    65532, all symbols bound at start (LD_BIND_NOW). There plumbd serves
#    /healthz, /readyz and /metrics against the real test apiserver and
#    exits 0 on SIGTERM; plumbctl vets a folder.
# Prints the runtime closure and the root's size.
#
# Needs root (chroot, mount namespace), PLUMB_TESTBED and PLUMB_K8S_BIN.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tests/lib.sh"
kc="$PLUMB_TESTBED/clusters/c1/kubeconfig"
k() { "$PLUMB_K8S_BIN/kubectl" --kubeconfig "$kc" "$@"; }
dockerfile="$root/Dockerfile"
tmp=$(mktemp -d)
ns=pkg-$RANDOM$RANDOM
pid=
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null
	k delete namespace "$ns" --wait=false >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT

# closure PKG…: the packages apt would install for PKG… (Depends and
# Pre-Depends, recursively; of alternatives the first one installed here,
# which runs the same Debian release as the image), sorted.
closure() { bash "$root/hack/image-rootfs.sh" --list "$@" | sort; }
# owner FILE: the Debian package that installed FILE (merged /usr aware).
owner() {
	local f=$1 o
	for cand in "$f" "$(readlink -f "$f")" "/usr$f" "${f#/usr}"; do
		o=$(dpkg -S "$cand" 2>/dev/null | head -1) && { echo "${o%%:*}"; return 0; }
	done
	return 1
}

# --- the build stage ------------------------------------------------------------
# COPY sources of the build stage, in order.
copies=$(awk '/^FROM .* AS build/ {b = 1; next} /^FROM / {b = 0} b && $1 == "COPY" {print $2}' "$dockerfile" | tr '\n' ' ')
t_eq "build stage copies" "Makefile pkg/ cmd/ " "$copies"
# Every COPY from the context (not --from a stage): its sources, not its destination.
context_copies=$(awk '$1 == "COPY" && $2 !~ /^--from=/ {for (i = 2; i < NF; i++) print $i}' "$dockerfile" | sort -u)
t_ok "the Dockerfile copies from the context" test -n "$context_copies"
for src in $context_copies; do
	t_ok ".dockerignore lets $src through" grep -qx "!${src}" "$root/.dockerignore"
	t_ok "$src is in the repository" test -e "$root/$src"
done
t_ok ".dockerignore starts by excluding everything" grep -qx '\*' "$root/.dockerignore"
mkdir -p "$tmp/ctx"
for src in $copies; do cp -r "$root/$src" "$tmp/ctx/"; done
make_line=$(grep -oE 'make BUILD=/out [^&\\]*' "$dockerfile")
t_eq "build stage make command" 'make BUILD=/out -j"$(nproc)" /out/plumbd /out/plumbctl ' "$make_line"
t_ok "build stage recipe builds on the copied paths only" \
	make -C "$tmp/ctx" BUILD="$tmp/out" -j2 "$tmp/out/plumbd" "$tmp/out/plumbctl"
t_ok "strip" strip "$tmp/out/plumbd" "$tmp/out/plumbctl"
bins=("$tmp/out/plumbd" "$tmp/out/plumbctl")
[[ -x ${bins[0]} && -x ${bins[1]} ]] || { echo "FAIL: no binaries to check"; t_done; exit 1; }

# The build stage's packages provide the tools and every pkg-config module
# the Makefile asks for (with the modules those require).
read -r -a build_pkgs <<<"$(sed -nE 's/^ARG BUILD_PACKAGES="([^"]*)"/\1/p' "$dockerfile")"
t_ok "build stage installs BUILD_PACKAGES" grep -q 'apt-get install -y --no-install-recommends \$BUILD_PACKAGES' "$dockerfile"
closure "${build_pkgs[@]}" >"$tmp/build-closure" || { echo "FAIL: build packages are not all installed on this machine"; t_done; exit 1; }
for tool in gcc make pkg-config ar strip; do
	f=$(readlink -f "$(command -v "$tool")")
	t_ok "build stage has $tool" grep -qx "$(owner "$f")" "$tmp/build-closure"
done
modules=$(sed -nE 's/^LIBS +:= *//p' "$root/Makefile")
t_ok "Makefile names its pkg-config modules" test -n "$modules"
declare -A seen_mod=()
while [[ -n ${modules// /} ]]; do
	next=
	for m in $modules; do
		[[ -n ${seen_mod[$m]:-} ]] && continue
		seen_mod[$m]=1
		pc=$(pkg-config --path "$m") && pkg=$(owner "$pc") || { t_ok "pkg-config module $m belongs to a package" false; continue; }
		t_ok "pkg-config $m from $pkg, in the build stage" grep -qx "$pkg" "$tmp/build-closure"
		next+=" $(pkg-config --print-requires --print-requires-private "$m" | awk '{print $1}' | tr '\n' ' ')"
	done
	modules=$next
done

# --- the runtime stage's packages --------------------------------------------
read -r -a runtime_pkgs <<<"$(sed -nE 's/^ARG RUNTIME_PACKAGES="([^"]*)"/\1/p' "$dockerfile")"
runtime_exclude=$(sed -nE 's/^ARG RUNTIME_EXCLUDE="([^"]*)"/\1/p' "$dockerfile")
t_ok "runtime stage installs RUNTIME_PACKAGES" grep -q 'apt-get install -y --no-install-recommends \$RUNTIME_PACKAGES' "$dockerfile"
t_ok "runtime stage assembles its root with image-rootfs.sh" \
	grep -qF 'image-rootfs.sh --exclude "$RUNTIME_EXCLUDE" /rootfs $RUNTIME_PACKAGES' "$dockerfile"
t_ok "final stage is that root" grep -qx 'COPY --from=rootfs /rootfs/ /' "$dockerfile"
t_ok "runtime stage has CA certificates" grep -qw ca-certificates <<<"${runtime_pkgs[*]}"
t_ok "runtime stage runs as 65532" grep -qx 'USER 65532:65532' "$dockerfile"

# The root the runtime stage makes, made the same way from this machine's
# packages, plus the binaries.
rootfs="$tmp/rootfs"
t_ok "image-rootfs.sh assembles the root" \
	bash -c "bash '$root/hack/image-rootfs.sh' --exclude '$runtime_exclude' '$rootfs' ${runtime_pkgs[*]} >'$tmp/closure'"
sort -o "$tmp/closure" "$tmp/closure"
echo "runtime closure ($(wc -l <"$tmp/closure") packages): $(tr '\n' ' ' <"$tmp/closure")"
for p in $runtime_exclude dpkg perl-base apt bash dash; do
	t_ok "$p is not in the runtime closure" bash -c "! grep -qx '$p' '$tmp/closure'"
done

# Every library ldd resolves, with the package it comes from.
ldd "${bins[@]}" >"$tmp/ldd" 2>&1
t_ok "ldd finds every library" bash -c "! grep -q 'not found' '$tmp/ldd'"
awk '/=>/ && $3 ~ /^\// {print $3} /^\t\/.*ld-linux/ {print $1}' "$tmp/ldd" | sort -u >"$tmp/libs"
t_ok "ldd listed libraries" test -s "$tmp/libs"
while read -r lib; do
	if ! pkg=$(owner "$lib"); then
		t_ok "$lib belongs to a Debian package" false
		continue
	fi
	t_ok "$(basename "$lib") from $pkg, in the runtime closure" grep -qx "$pkg" "$tmp/closure"
done <"$tmp/libs"

# --- run in that root -----------------------------------------------------------
mkdir -p "$rootfs"/{usr/local/bin,cfg}
cp "${bins[@]}" "$rootfs/usr/local/bin/"
cp "$kc" "$rootfs/kubeconfig"
chmod 0755 "$tmp" "$rootfs"
chmod 0644 "$rootfs/kubeconfig"
cat >"$rootfs/cfg/cm.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: team-a}
data: {LOG_LEVEL: info}
EOF
for f in usr/bin/sh usr/bin/bash usr/bin/dash usr/bin/dpkg usr/bin/apt-get usr/bin/perl usr/bin/openssl; do
	t_ok "no /$f in the root" test ! -e "$rootfs/$f"
done
t_eq "nothing in the root's /usr/bin and /usr/sbin" "" "$(find "$rootfs/usr/bin/" "$rootfs/usr/sbin/" -mindepth 1 -printf '%P ')"
t_ok "the root has the CA bundle" test -s "$rootfs/etc/ssl/certs/ca-certificates.crt"
t_eq "the root's /tmp" "1777" "$(stat -c %a "$rootfs/tmp")"
root_kb=$(du -sk --apparent-size "$rootfs" | cut -f1)
echo "runtime root: $((root_kb / 1024)) MiB in $(find "$rootfs" -type f | wc -l) files (plumbd, plumbctl included; kustomize and helm not)"

# A Git repository inside the root, for plumbd to mirror through libgit2.
git init -q --bare -b main "$rootfs/git/config.git"
git clone -q "$rootfs/git/config.git" "$tmp/work" 2>/dev/null
cp "$rootfs/cfg/cm.yaml" "$tmp/work/"
git -C "$tmp/work" add cm.yaml
git -C "$tmp/work" -c user.name=t -c user.email=t@example.com commit -qm "a ConfigMap"
git -C "$tmp/work" push -q origin main
head=$(git -C "$tmp/work" rev-parse HEAD)
# Owned by plumbd's UID: libgit2 refuses repositories of other owners
# (safe.directory), which is what a pod would see too.
chown -R 65532:65532 "$rootfs/git"

# pod CMD…: CMD inside that root as the pod runs it: read-only root, tmpfs
# emptyDirs at /tmp and the cache dir, UID/GID 65532, no environment but
# LD_BIND_NOW (every symbol resolved at start) and HOME. Every step execs
# the next, so a background pod's $! is the command's own pid.
pod=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LD_BIND_NOW=1 HOME=/nonexistent
	unshare -m sh -c '
	r=$1; shift
	mount --bind "$r" "$r" && mount -o remount,bind,ro "$r" &&
	mount -t tmpfs -o mode=1777 tmpfs "$r/tmp" &&
	mount -t tmpfs -o uid=65532,gid=65532,mode=0700 tmpfs "$r/var/cache/plumb" &&
	exec chroot --userspec=65532:65532 "$r" "$@"' sh "$rootfs")
t_ok "plumbd --version" "${pod[@]}" /usr/local/bin/plumbd --version
t_ok "plumbctl vet" "${pod[@]}" /usr/local/bin/plumbctl vet /cfg

t_ok "crds" k apply -f "$root/manifests/crds/"
k create namespace "$ns" >/dev/null
cat >"$tmp/gitsync.yaml" <<EOF
apiVersion: plumb.dev/v1alpha1
kind: GitSync
metadata: {name: image, namespace: $ns}
spec:
  git: {url: "file:///git/config.git", ref: {branch: main}}
  targets: {clusterNames: [nowhere]}
EOF
t_ok "gitsync on the repository in the root" k apply -f "$tmp/gitsync.yaml"
freeport() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# start_plumbd CACHE_DIR LOG: plumbd in the pod root against cluster c1, in the background.
start_plumbd() {
	mport=$(freeport)
	hport=$(freeport)
	"${pod[@]}" /usr/local/bin/plumbd --kubeconfig=/kubeconfig --namespace="$ns" \
		--metrics-addr="127.0.0.1:$mport" --health-addr="127.0.0.1:$hport" \
		--cache-dir="$1" --shutdown-timeout=5s --allow-file-urls >"$2" 2>&1 &
	pid=$!
}
# wait_for CMD…: up to 30 s, while plumbd runs.
wait_for() {
	for _ in $(seq 1 60); do
		"$@" >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.5
	done
	return 1
}
stop_plumbd() {
	kill -TERM "$pid" 2>/dev/null
	wait "$pid"
	rc=$?
	pid=
}

start_plumbd /var/cache/plumb "$tmp/plumbd.log"
t_ok "plumbd ready in the runtime root" wait_for curl -fsS "http://127.0.0.1:$hport/readyz"
t_ok "plumbd /healthz" curl -fsS "http://127.0.0.1:$hport/healthz"
t_ok "plumbd /metrics" bash -c "curl -fsS 'http://127.0.0.1:$mport/metrics' | grep -q '^plumb_'"
t_eq "plumbd runs as 65532" "65532 65532" "$(awk '/^Uid:/ {print $2, $3}' "/proc/$pid/status" 2>/dev/null)"
t_ok "plumbd mirrors the repository into the cache emptyDir (libgit2)" \
	wait_for grep -q "\"new revision\".*$head" "$tmp/plumbd.log"
stop_plumbd
t_eq "plumbd exits 0 on SIGTERM" 0 "$rc"
[[ $t_failed -gt 0 ]] && tail -20 "$tmp/plumbd.log"

# The same with the cache on the root file system: it is read-only.
start_plumbd /cfg/cache "$tmp/plumbd-ro.log"
t_ok "cache on the root fails: read-only" wait_for grep -qi "read-only file system" "$tmp/plumbd-ro.log"
stop_plumbd
[[ $t_failed -gt 0 ]] && tail -5 "$tmp/plumbd-ro.log"

# --- size ------------------------------------------------------------------------
# The image is this root plus kustomize and helm (docs/install.md has the
# size make image measured); the root stays small.
t_ok "runtime root under 40 MiB" test "$root_kb" -lt $((40 * 1024))

t_done
