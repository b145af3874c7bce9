# Shared helpers for shell tests. Source it, call `t_ok NAME CMD…`,
# `t_fails NAME PATTERN CMD…`, and end with `t_done` (prints "N passed, N failed"
# and sets the exit status). Check JSON with `CMD | json_check [JQ-ARGS…] FILTER`,
# never with `CMD | jq -e FILTER` (see json_check).
t_passed=0
t_failed=0

t_ok() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		t_passed=$((t_passed + 1))
		echo "PASS $name"
	else
		t_failed=$((t_failed + 1))
		echo "FAIL $name: $*"
		echo "$out" | sed 's/^/    /' | tail -20
	fi
}

# t_fails NAME PATTERN CMD…: CMD must fail and its output must match PATTERN (grep -E).
t_fails() {
	local name=$1 pattern=$2 out
	shift 2
	if out=$("$@" 2>&1); then
		t_failed=$((t_failed + 1))
		echo "FAIL $name: succeeded but should have failed: $*"
		echo "$out" | sed 's/^/    /' | tail -20
	elif ! grep -qE -- "$pattern" <<<"$out"; then
		t_failed=$((t_failed + 1))
		echo "FAIL $name: output does not match /$pattern/"
		echo "$out" | sed 's/^/    /' | tail -20
	else
		t_passed=$((t_passed + 1))
		echo "PASS $name"
	fi
}

# t_eq NAME WANT GOT
t_eq() {
	if [[ $2 == "$3" ]]; then
		t_passed=$((t_passed + 1))
		echo "PASS $1"
	else
		t_failed=$((t_failed + 1))
		echo "FAIL $1: want [$2] got [$3]"
	fi
}

# CMD | json_check [JQ-ARGS…] FILTER: succeeds only if stdin is non-empty JSON and
# the filter's last result is neither false nor null (nor missing). Use it instead
# of `jq -e`: Debian's jq 1.6 exits 0 on empty input even with -e, so
# `kubectl get … -o json | jq -e …` passes when kubectl failed and printed nothing.
# JQ-ARGS are passed to jq as they are (--arg, --argjson, …). Says why on stderr.
json_check() {
	local in out last
	in=$(cat) || { echo "json_check: could not read stdin" >&2; return 1; }
	if [[ -z ${in//[[:space:]]/} ]]; then
		echo "json_check: empty input" >&2
		return 1
	fi
	if ! out=$(jq -c "$@" <<<"$in"); then
		echo "json_check: jq $* failed on input: ${in:0:300}" >&2
		return 1
	fi
	last=${out##*$'\n'}
	case $last in
	'' | false | null)
		echo "json_check: $* gave ${last:-no result}; input: ${in:0:300}" >&2
		return 1
		;;
	esac
}
# Exported so that `wait_for N bash -c '… | json_check …'` finds it in the child shell.
export -f json_check

t_done() {
	echo "$t_passed passed, $t_failed failed"
	[[ $t_failed -eq 0 ]]
}
