# Shared helpers for shell tests. Source it, call `t_ok NAME CMD…`,
# `t_fails NAME PATTERN CMD…`, and end with `t_done` (prints "N passed, N failed"
# and sets the exit status).
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

t_done() {
	echo "$t_passed passed, $t_failed failed"
	[[ $t_failed -eq 0 ]]
}
