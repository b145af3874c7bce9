#!/usr/bin/env bash
# Benchmark of pkg/source against the git command line (not a timed test).
#
#   bash bench/source/run.sh [BUILD_DIR] [FILES]
#
# Makes a repository with FILES (default 5000) manifests of about 2 KB under
# clusters/app (about 10 MB in all), then, 3 times each, reports the median:
#   plumb: first fetch into an empty cache, a fetch with nothing new, reading
#          every file under clusters/app at main (tests/tools/source_bench.c)
#   git:   git clone --mirror, git fetch in that mirror with nothing new,
#          git archive main clusters/app > /dev/null
# Reads (both sides) are the median of 5 within each run, as they are short.
# Both read over file:// from the same bare repository.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
[[ "$build" = /* ]] || build=$root/$build
nfiles=${2:-5000}
bench=$build/tools/source_bench
[[ -x "$bench" ]] || make -C "$root" --no-print-directory BUILD="${build#"$root"/}" "${build#"$root"/}/tools/source_bench" >&2

work=$(mktemp -d /tmp/plumb-bench-source-XXXXXX)
trap 'rm -rf "$work"' EXIT
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@plumb.dev GIT_COMMITTER_NAME=bench \
	GIT_COMMITTER_EMAIL=bench@plumb.dev GIT_CONFIG_NOSYSTEM=1 HOME=$work

echo "making a repository of $nfiles manifests..." >&2
git init -q -b main "$work/src"
python3 - "$work/src/clusters/app" "$nfiles" <<'PY'
import os, sys, random
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
for i in range(n):
    d = os.path.join(root, "ns%03d" % (i // 50))
    os.makedirs(d, exist_ok=True)
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: cm-%05d" % i,
             "  namespace: ns%03d" % (i // 50), "data:"]
    while sum(len(l) + 1 for l in lines) < 2000:
        lines.append("  key%03d: \"%016x\"" % (len(lines), rnd.getrandbits(64)))
    with open(os.path.join(d, "cm-%05d.yaml" % i), "w") as f:
        f.write("\n".join(lines) + "\n")
PY
git -C "$work/src" add -A
git -C "$work/src" commit -q -m "5000 manifests"
git clone -q --bare "$work/src" "$work/repo.git"
bytes=$(du -sb "$work/src/clusters" | cut -f1)
url=file://$work/repo.git

median() { sort -n | sed -n 2p; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }

: >"$work/plumb.txt"
: >"$work/git.txt"
for i in 1 2 3; do
	"$bench" "$url" "$work/cache$i" main clusters/app >>"$work/plumb.txt"
	t0=$(now); git clone -q --mirror "$url" "$work/mirror$i.git"; t1=$(now)
	git -C "$work/mirror$i.git" fetch -q; t2=$(now)
	archive=$(for j in 1 2 3 4 5; do
		a=$(now); git -C "$work/mirror$i.git" archive main clusters/app >/dev/null; b=$(now)
		elapsed "$a" "$b"; echo
	done | sort -n | sed -n 3p)
	echo "clone=$(elapsed "$t0" "$t1") fetch=$(elapsed "$t1" "$t2") archive=$archive" >>"$work/git.txt"
done
field() { grep -o "$1=[0-9.]*" "$2" | cut -d= -f2 | median; }
files=$(field files "$work/plumb.txt")
echo "repository: $nfiles files, $bytes bytes under clusters/app; median of 3 runs (seconds)"
printf '%-34s %10s   %-40s %10s\n' "plumb (pkg/source, libgit2)" "" "git command line" ""
printf '%-34s %10s   %-40s %10s\n' "first fetch (empty cache)" "$(field first_fetch "$work/plumb.txt")" \
	"git clone --mirror" "$(field clone "$work/git.txt")"
printf '%-34s %10s   %-40s %10s\n' "fetch, nothing new" "$(field noop_fetch "$work/plumb.txt")" \
	"git fetch in the mirror" "$(field fetch "$work/git.txt")"
printf '%-34s %10s   %-40s %10s\n' "read all $files files at main" "$(field read "$work/plumb.txt")" \
	"git archive main clusters/app" "$(field archive "$work/git.txt")"
echo "objects received by the no-op fetches: $(grep -o 'noop_objects=[0-9]*' "$work/plumb.txt" | cut -d= -f2 | tr '\n' ' ')"
