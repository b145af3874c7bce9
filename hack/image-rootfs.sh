#!/usr/bin/env bash
# Assembles the runtime root file system of plumb's image: the files of
# exactly the installed Debian packages the binaries need, and nothing that
# only installs or configures packages (no dpkg, no apt, no shell).
#
#   hack/image-rootfs.sh [--exclude "PKG…"] DEST PKG…
#   hack/image-rootfs.sh [--exclude "PKG…"] --list PKG…   only print the closure
#
# Run as root in the Dockerfile's rootfs stage (on debian:12-slim, after
# apt-get install of PKG…) and by tests/integration/test_packaging.sh on the
# test machine (Debian 12 too). DEST gets:
#  - the files (dpkg -L) of the Depends/Pre-Depends closure of PKG… (of
#    alternatives the first one installed), not descending into the packages
#    of --exclude: those ca-certificates needs only to build its bundle at
#    configure time (openssl's CLI, debconf and through it perl and dpkg);
#    without manual pages, info pages, lintian overrides, translations and
#    documentation other than each package's copyright file, and without
#    scripts whose interpreter is not there (update-ca-certificates);
#  - Debian 12's merged /usr (/bin, /sbin, /lib, /lib64 are links into /usr);
#  - the CA bundle and hash links ca-certificates' postinst built (/etc/ssl/certs);
#  - /etc/passwd and /etc/group with root, nobody and plumb (65532), an
#    /etc/nsswitch.conf for files and DNS, /tmp (1777) and /var/cache/plumb
#    (owned by 65532);
#  - /var/lib/dpkg/status.d/<package>: each package's dpkg status entry, the
#    way distroless images list theirs, so image scanners see what is inside
#    without a dpkg database;
# and prints the closure, one package a line.
set -euo pipefail

exclude=""
if [[ ${1:-} == --exclude ]]; then
	exclude=$2
	shift 2
fi
[[ $# -ge 2 ]] || { echo "usage: image-rootfs.sh [--exclude \"PKG…\"] DEST|--list PKG…" >&2; exit 2; }
dest=$1
shift

installed() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed; }

# The closure of "$@", breadth first; excluded packages are neither kept nor
# walked into.
declare -A seen=()
for p in $exclude; do seen[$p]=excluded; done
queue=("$@")
closure=()
while [[ ${#queue[@]} -gt 0 ]]; do
	p=${queue[0]}
	queue=("${queue[@]:1}")
	[[ -n ${seen[$p]:-} ]] && continue
	seen[$p]=1
	installed "$p" || { echo "image-rootfs: $p is not installed" >&2; exit 1; }
	closure+=("$p")
	deps=$(dpkg-query -W -f='${Depends}, ${Pre-Depends}' "$p")
	while IFS= read -r alt; do
		[[ -z ${alt// /} ]] && continue
		for name in $(sed -E 's/\([^)]*\)//g; s/:[a-z0-9]+//g; s/\|/ /g' <<<"$alt"); do
			if [[ ${seen[$name]:-} == excluded ]] || installed "$name"; then
				queue+=("$name")
				break
			fi
		done
	done < <(tr ',' '\n' <<<"$deps")
done
if [[ $dest == --list ]]; then
	printf '%s\n' "${closure[@]}"
	exit 0
fi

mkdir -p "$dest"/usr/{bin,sbin,lib,lib64} "$dest"/etc/ssl "$dest"/var/lib/dpkg/status.d "$dest"/var/cache/plumb "$dest"/tmp
for d in bin sbin lib lib64; do
	[[ -L $dest/$d ]] || ln -s "usr/$d" "$dest/$d"
done

# Every regular file and link of the closure, by its merged-/usr path.
for p in "${closure[@]}"; do
	dpkg-query -s "$p" >"$dest/var/lib/dpkg/status.d/$p"
	dpkg -L "$p"
done | grep -vE '^/usr/share/(man|info|lintian|locale|bug)/|^/usr/share/doc/' | sort -u >"$dest/.files"
for p in "${closure[@]}"; do
	[[ -e /usr/share/doc/$p/copyright ]] && echo "/usr/share/doc/$p/copyright"
done >>"$dest/.files"
while read -r f; do
	[[ -L $f || -f $f ]] || continue
	case $f in
	/bin | /sbin | /lib | /lib32 | /lib64 | /libx32) ;; # the merged-/usr links made above
	/lib/* | /lib64/* | /bin/* | /sbin/*) echo "usr$f" ;;
	*) echo "${f#/}" ;;
	esac
done <"$dest/.files" | sort -u >"$dest/.paths"
rm "$dest/.files"
# tar keeps links as links and modes; --keep-directory-symlink keeps lib -> usr/lib.
tar -C / --no-recursion -cf - -T "$dest/.paths" | tar -C "$dest" --keep-directory-symlink -xf - ||
	{ echo "image-rootfs: copying the packages' files failed" >&2; exit 1; }
rm "$dest/.paths"
# Scripts whose interpreter is not in the root would only fail
# (update-ca-certificates is a shell script).
while IFS= read -r -d '' f; do
	read -r -n 64 first <"$f" || true
	if [[ $first == '#!'* ]]; then
		interp=${first#'#!'}
		interp=${interp# }
		interp=${interp%% *}
		[[ -e $dest$interp ]] || rm "$f"
	fi
done < <(find "$dest/usr/bin" "$dest/usr/sbin" -type f -print0)

# Built by ca-certificates' postinst (update-ca-certificates), not in dpkg -L.
if [[ -d /etc/ssl/certs ]]; then
	cp -a /etc/ssl/certs "$dest/etc/ssl/"
fi

cat >"$dest/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
plumb:x:65532:65532:plumb:/nonexistent:/usr/sbin/nologin
EOF
cat >"$dest/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
plumb:x:65532:
EOF
cat >"$dest/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
chmod 1777 "$dest/tmp"
chown 65532:65532 "$dest/var/cache/plumb"
chmod 0700 "$dest/var/cache/plumb"

printf '%s\n' "${closure[@]}"
