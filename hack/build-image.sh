#!/usr/bin/env bash
# Builds plumb's image from the Dockerfile with buildah, as root and without
# a daemon (vfs storage, chroot isolation), and reports its size.
#
#   hack/build-image.sh            (make image)
#   hack/build-image.sh --tag      print the image name it builds, and exit
#
# No image registry needs to be reachable: a base image the Dockerfile names
# (FROM) that is not in buildah's local storage is made here instead of
# pulled: debian:12 and debian:12-slim from a Debian 12 root file system
# that mmdebstrap builds from Debian's archive (bookworm, bookworm-updates,
# bookworm-security, like the official images), golang:<version>-bookworm
# from that root with CA certificates and this machine's Go toolchain
# (`go env GOROOT`, which must be that version) and CA bundle (the Go proxy
# reached as this machine reaches it). The root file systems and
# the Go tarball are cached in $PLUMB_CACHE/image (default ~/.cache/plumb),
# the bases stay in buildah's storage, and the build keeps its layers
# (--layers) and the Go module and build caches (cache mounts), so a second
# run builds only what changed, and nothing when neither the Dockerfile, the
# files it copies nor the bases changed.
#
# Installs buildah and mmdebstrap with apt-get when they are missing.
# Environment: PLUMB_IMAGE, the tag (default localhost/plumb:<the
# Dockerfile's org.opencontainers.image.version>); PLUMB_CACHE.
# Prints the image name on stdout; progress and the size on stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
dockerfile="$root/Dockerfile"
cache="${PLUMB_CACHE:-$HOME/.cache/plumb}/image"
version=$(sed -nE 's/.*org\.opencontainers\.image\.version="([^"]+)".*/\1/p' "$dockerfile")
tag=${PLUMB_IMAGE:-localhost/plumb:${version:-dev}}
mirrors=("deb http://deb.debian.org/debian bookworm main"
	"deb http://deb.debian.org/debian bookworm-updates main"
	"deb http://deb.debian.org/debian-security bookworm-security main")

if [[ ${1:-} == --tag ]]; then
	echo "$tag"
	exit 0
fi

log() { echo "build-image: $*" >&2; }
die() { log "$*"; exit 1; }
bh() { buildah --storage-driver vfs "$@"; }

[[ $(id -u) -eq 0 ]] || die "needs root (buildah with vfs storage and chroot isolation, mmdebstrap)"
start=$SECONDS

if ! command -v buildah >/dev/null || ! command -v mmdebstrap >/dev/null; then
	log "installing buildah and mmdebstrap"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q buildah mmdebstrap >/dev/null ||
		{ apt-get update -q >/dev/null && apt-get install -y -q buildah mmdebstrap >/dev/null; } ||
		die "could not install buildah and mmdebstrap"
fi
mkdir -p "$cache"

have_image() { bh inspect --type image "$1" >/dev/null 2>&1; }

# rootfs_tar NAME MMDEBSTRAP-ARGS…: $cache/NAME.tar, a Debian 12 minbase root
# (made once).
rootfs_tar() {
	local name=$1 out="$cache/$1.tar" t
	shift
	if [[ ! -s $out ]]; then
		log "making $name.tar with mmdebstrap (first time only)"
		t=$SECONDS
		# The .debs are kept in $cache/debs for the next root (essential/unlink
		# skipped so that the essential ones are still there to sync out).
		mkdir -p "$cache/debs"
		mmdebstrap --quiet --variant=minbase --format=tar --skip=essential/unlink \
			--setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
			--setup-hook="sync-in $cache/debs /var/cache/apt/archives" \
			--customize-hook="sync-out /var/cache/apt/archives $cache/debs" \
			"$@" bookworm "$out.tmp" "${mirrors[@]}" >&2 ||
			{ rm -f "$out.tmp"; die "mmdebstrap failed"; }
		mv "$out.tmp" "$out"
		log "$name.tar: $(du -h "$out" | cut -f1) in $((SECONDS - t))s"
	fi
	echo "$out"
}

# base_image NAME CONTAINERFILE FILE…: builds NAME from CONTAINERFILE's text
# with copies of FILE… as its context.
base_image() {
	local name=$1 text=$2 ctx f
	shift 2
	ctx=$(mktemp -d)
	for f in "$@"; do
		ln "$f" "$ctx/" 2>/dev/null || cp "$f" "$ctx/"
	done
	printf '%s\n' "$text" >"$ctx/Containerfile"
	log "making $name locally"
	bh bud --quiet --isolation chroot --pull=never -t "$name" -f "$ctx/Containerfile" "$ctx" >/dev/null ||
		{ rm -rf "$ctx"; die "could not build $name"; }
	rm -rf "$ctx"
}

# The slim variant drops what the official debian:12-slim drops (its dpkg
# path excludes, which stay in the image for later installs).
slim_opts=()
for p in '/usr/share/doc/*' '/usr/share/man/*' '/usr/share/groff/*' '/usr/share/info/*' \
	'/usr/share/lintian/*' '/usr/share/linda/*' '/usr/share/locale/*'; do
	slim_opts+=("--dpkgopt=path-exclude=$p")
done
slim_opts+=("--dpkgopt=path-include=/usr/share/doc/*/copyright" "--dpkgopt=path-include=/usr/share/locale/locale.alias")

for ref in $(awk 'toupper($1) == "FROM" {print $2}' "$dockerfile" | sort -u); do
	[[ $ref == scratch ]] && continue
	case $ref in
	*/*) full=$ref ;;
	*) full=docker.io/library/$ref ;;
	esac
	have_image "$full" && continue
	case $ref in
	debian:12)
		base_image "$full" $'FROM scratch\nADD debian-12.tar /\nCMD ["bash"]' "$(rootfs_tar debian-12)"
		;;
	debian:12-slim)
		base_image "$full" $'FROM scratch\nADD debian-12-slim.tar /\nCMD ["bash"]' \
			"$(rootfs_tar debian-12-slim "${slim_opts[@]}")"
		;;
	golang:*-bookworm)
		want=${ref#golang:}
		want=go${want%-bookworm}
		command -v go >/dev/null || die "$ref is not in local storage and there is no Go here to make it from"
		have=$(go env GOVERSION)
		[[ $have == "$want" ]] || die "$ref is not in local storage and this machine's Go is $have, not $want: pull $ref or install $want"
		[[ $(basename "$(go env GOROOT)") == go ]] || die "GOROOT $(go env GOROOT) is not named go"
		gotar="$cache/$have.linux-$(go env GOARCH).tar"
		if [[ ! -s $gotar ]]; then
			tar -C "$(go env GOROOT)/.." -cf "$gotar.tmp" "$(basename "$(go env GOROOT)")"
			mv "$gotar.tmp" "$gotar"
		fi
		# The official image's layout: Go in /usr/local/go, GOPATH /go. Its CA
		# bundle is this machine's, which may have more authorities than
		# Debian's (an egress proxy that re-signs TLS): the Go proxy must be
		# reached the way this machine reaches it.
		cp /etc/ssl/certs/ca-certificates.crt "$cache/host-ca-certificates.crt"
		base_image "$full" "FROM scratch
ADD debian-12-go.tar /
ADD $(basename "$gotar") /usr/local/
COPY host-ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV GOLANG_VERSION=${have#go} GOTOOLCHAIN=local GOPATH=/go
ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /go
CMD [\"bash\"]" "$(rootfs_tar debian-12-go --include=ca-certificates)" "$gotar" "$cache/host-ca-certificates.crt"
		;;
	*)
		die "$ref is not in local storage and this script cannot make it: pull it first"
		;;
	esac
done

# What the build reads: the Dockerfile, .dockerignore, the files it lets
# through (its "!" lines) and the base images. Unchanged since the last
# build of $tag: nothing to do (with vfs storage even an all-cached build
# copies every stage's root, minutes).
inputs=$( {
	cd "$root"
	sha256sum Dockerfile .dockerignore
	sed -n 's/^!//p' .dockerignore | xargs -r find | LC_ALL=C sort | while read -r f; do
		[[ -f $f ]] && sha256sum "$f"
	done
	for ref in $(awk 'toupper($1) == "FROM" && $2 != "scratch" {print $2}' Dockerfile | sort -u); do
		bh inspect --type image -f '{{.FromImageID}}' "$ref"; echo
	done
} | sha256sum | cut -d' ' -f1)
stamp="$cache/built-$(tr -c 'A-Za-z0-9.\n-' _ <<<"$tag")"
if [[ -s $stamp && $(cat "$stamp") == "$inputs $(bh inspect --type image -f '{{.FromImageID}}' "$tag" 2>/dev/null)" ]]; then
	log "$tag is up to date (same Dockerfile, context files and base images)"
else
	log "building $tag from the Dockerfile"
	t=$SECONDS
	bh bud --isolation chroot --pull=never --layers -t "$tag" -f "$dockerfile" "$root" >&2 ||
		die "the image build failed"
	echo "$inputs $(bh inspect --type image -f '{{.FromImageID}}' "$tag")" >"$stamp"
	log "built $tag in $((SECONDS - t))s (all: $((SECONDS - start))s)"
fi

# The size: what buildah's storage reports, and the files of the image.
ctr=$(bh from --pull=never --quiet "$tag")
mnt=$(bh mount "$ctr")
files=$(find "$mnt" -xdev -type f | wc -l)
bytes=$(du -sb --apparent-size "$mnt" | cut -f1)
bh umount "$ctr" >/dev/null
bh rm "$ctr" >/dev/null
log "size: $(bh images --format '{{.Size}}' "$tag") (buildah images); $((bytes / 1024 / 1024)) MiB in $files files"
echo "$tag"
