#!/usr/bin/env bash
# Runs plumb's tests: the unit tests, then the integration and end-to-end tests
# against a fresh local test bed of three real clusters (hack/cluster.sh), which
# is stopped again whatever happens.
#
#   hack/run-tests.sh [--build DIR] [--unit-only] [--asan] [--only PATTERN] [--fuzz DIR]
#
# Prints one line per test program and ends with "N passed, N failed" where N
# counts individual checks (Check's own counts, or 1 per script without any).
#
# End-to-end scripts marked "# Test bed: workloads" bring up a test bed of
# their own where workloads roll out (cluster.sh up N --workloads). They run
# last, side by side (they mostly wait for rollouts, bakes and timeouts), and
# the binaries that bed needs (hack/build-workloads.sh; minutes on a fresh
# machine, cached after) are built in the background from the start, at low
# priority, while the other tests run.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=build
unit_only=0
asan=0
only=""
fuzz_dir=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--build) build=$2; shift 2 ;;
	--unit-only) unit_only=1; shift ;;
	--asan) asan=1; shift ;;
	--only) only=$2; shift 2 ;;
	--fuzz) fuzz_dir=$2; shift 2 ;;
	*) echo "run-tests: unknown flag $1" >&2; exit 2 ;;
	esac
done
cd "$root"
export BUILD=$build CK_FORK=yes CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-120}
logdir=$(mktemp -d /tmp/plumb-test-logs.XXXXXX)
passed=0
failed=0
failed_names=()

# run_one NAME CMD…: runs a test program, shows its output, adds up its checks.
run_one() {
	local name=$1 start=$SECONDS
	shift
	echo "=== $name"
	"$@" >"$logdir/$name.log" 2>&1
	report_one "$name" $? $((SECONDS - start))
}

# report_one NAME EXIT SECONDS: shows what the test program NAME logged and
# adds up its checks.
report_one() {
	local name=$1 log="$logdir/$1.log" rc=$2 secs=$3 p f
	# Check's summary: "100%: Checks: 8, Failures: 0, Errors: 0"; scripts may
	# print the plain "N passed, N failed".
	p=0 f=0
	while read -r line; do
		local c fl er
		c=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
		fl=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
		er=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
		p=$((p + c - fl - er))
		f=$((f + fl + er))
	done < <(grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log")
	while read -r line; do
		p=$((p + $(awk '{print $1}' <<<"$line")))
		f=$((f + $(awk '{print $3}' <<<"$line")))
	done < <(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log")
	if [[ $p -eq 0 && $f -eq 0 ]]; then
		if [[ $rc -eq 0 ]]; then p=1; else f=1; fi
	elif [[ $rc -ne 0 && $f -eq 0 ]]; then
		f=1
	fi
	if [[ $rc -ne 0 ]] || grep -qE '^(==[0-9]+==ERROR|SUMMARY: (Address|Undefined|Leak)Sanitizer)|runtime error:' "$log"; then
		[[ $f -eq 0 ]] && f=1
		failed_names+=("$name")
		cat "$log"
		echo "--- $name FAILED (exit $rc, ${secs}s)"
	else
		grep -E '^[0-9]+%: Checks|^[0-9]+ passed, [0-9]+ failed|^(PASS|ok|SKIP)' "$log" | tail -5
		echo "--- $name ok (${secs}s)"
	fi
	passed=$((passed + p))
	failed=$((failed + f))
}

selected() { [[ -z $only || $1 == *$only* ]]; }

for t in "$build"/tests/unit/test_*; do
	[[ -x $t ]] || continue
	name="unit/$(basename "$t")"
	selected "$name" && run_one "$(basename "$t")" "$t"
done

# Every parser of outside input, fuzzed briefly (FUZZ_SECONDS each).
if [[ -n $fuzz_dir ]] && selected fuzz; then
	FUZZ_SECONDS=${FUZZ_SECONDS:-10} run_one fuzz bash "$here/run-fuzz.sh" "$fuzz_dir"
fi

needs_workloads() { [[ $1 == *.sh ]] && grep -q '^# Test bed: workloads' "$1"; }

if [[ $unit_only -eq 0 ]]; then
	export PLUMB_K8S_BIN
	PLUMB_K8S_BIN=$(bash "$here/build-k8s.sh") || { echo "run-tests: could not build the Kubernetes binaries" >&2; exit 1; }
	for t in e2e/test_*.sh; do
		if needs_workloads "$t" && selected "e2e/$(basename "$t" .sh)"; then
			nice -n 19 bash "$here/build-workloads.sh" >"$logdir/build-workloads.log" 2>&1 &
			break
		fi
	done
	export PLUMB_TESTBED
	PLUMB_TESTBED=$(mktemp -d /tmp/plumb-testbed.XXXXXX)
	rmdir "$PLUMB_TESTBED"
	trap 'bash "$here/cluster.sh" down; rm -rf "$logdir"' EXIT
	if ! bash "$here/cluster.sh" up 3; then
		echo "run-tests: the test bed did not come up" >&2
		exit 1
	fi
	echo "Kubernetes under test: $("$PLUMB_K8S_BIN/kubectl" --kubeconfig "$PLUMB_TESTBED/clusters/c1/kubeconfig" version -o json | jq -r '"server " + .serverVersion.gitVersion + " (" + .serverVersion.platform + "), kubectl " + .clientVersion.gitVersion')"
	side=()   # the workloads pass: started together, reported in order
	for pass in plain workloads; do
	for kind in integration e2e; do
		dir=tests/integration
		[[ $kind == e2e ]] && dir=e2e
		for t in "$dir"/test_*.sh "$build/tests/$kind"/test_*; do
			[[ -e $t ]] || continue
			base=$(basename "$t" .sh)
			# A test_X.sh script drives its own binary test_X.
			[[ $t != *.sh && -e $dir/$base.sh ]] && continue
			[[ $t != *.sh && ! -x $t ]] && continue
			selected "$kind/$base" || continue
			if needs_workloads "$t"; then [[ $pass == workloads ]] || continue; else [[ $pass == plain ]] || continue; fi
			if [[ $pass == workloads ]]; then
				echo "=== $kind-$base (started)"
				(s=$SECONDS; bash "$t" >"$logdir/$kind-$base.log" 2>&1; echo "$? $((SECONDS - s))" >"$logdir/$kind-$base.rc") &
				side+=("$kind-$base")
				continue
			fi
			if [[ $t == *.sh ]]; then
				run_one "$kind-$base" bash "$t"
			else
				run_one "$kind-$base" "$t"
			fi
		done
	done
	done
	wait
	for name in "${side[@]}"; do
		read -r rc secs <"$logdir/$name.rc" || { rc=1 secs=0; }
		echo "=== $name"
		report_one "$name" "$rc" "$secs"
	done
else
	trap 'rm -rf "$logdir"' EXIT
fi

echo
if [[ ${#failed_names[@]} -gt 0 ]]; then
	echo "failed: ${failed_names[*]}"
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
