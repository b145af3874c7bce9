#!/usr/bin/env bash
# Runs every libFuzzer binary in DIR (default build-fuzz/fuzz) for a short,
# bounded time with its seed corpus from fuzz/corpus/<name>/. The corpus is
# copied to a temporary folder so that new inputs do not dirty the repo.
# Exit status is non-zero when any fuzzer finds a crash.
#   FUZZ_SECONDS (default 20) per fuzzer.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-build-fuzz/fuzz}
secs=${FUZZ_SECONDS:-20}
[[ -d $dir ]] || { echo "run-fuzz: no folder $dir" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
found=0
for bin in "$dir"/fuzz_*; do
	[[ -x $bin && -f $bin ]] || continue
	found=1
	name=$(basename "$bin")
	mkdir -p "$tmp/$name/corpus" "$tmp/$name/artifacts"
	if [[ -d $root/fuzz/corpus/$name ]]; then
		cp -r "$root/fuzz/corpus/$name/." "$tmp/$name/corpus/"
	fi
	echo "run-fuzz: $name for ${secs}s"
	if ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
			-artifact_prefix="$tmp/$name/artifacts/" "$tmp/$name/corpus" > "$tmp/$name/log" 2>&1; then
		tail -n 1 "$tmp/$name/log"
	else
		echo "run-fuzz: $name FAILED; last lines of its log:" >&2
		tail -n 40 "$tmp/$name/log" >&2
		for a in "$tmp/$name/artifacts"/*; do
			[[ -f $a ]] || continue
			mkdir -p "$root/build-fuzz/crashes"
			cp "$a" "$root/build-fuzz/crashes/" && echo "run-fuzz: input kept in build-fuzz/crashes/$(basename "$a")" >&2
		done
		status=1
	fi
done
(( found )) || { echo "run-fuzz: no fuzzers in $dir" >&2; exit 1; }
exit $status
