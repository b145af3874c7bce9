#!/usr/bin/env bash
# tests/lib.sh's own checks: json_check must fail where `jq -e` passes by
# accident (empty input from a command that failed), on invalid JSON and on a
# false, null or missing result, and pass on a true one. Needs no test bed.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tests/lib.sh"

# The accident json_check exists for: jq 1.6 exits 0 here. Recorded, not required,
# so that a fixed jq does not fail this script.
if printf '' | jq -e 'length > 0' >/dev/null 2>&1; then
	echo "note: this jq ($(jq --version)) exits 0 on empty input with -e"
fi

t_fails "empty input fails" 'empty input' bash -c "printf '' | json_check 'length > 0'"
t_fails "whitespace-only input fails" 'empty input' bash -c "printf ' \n\t\n' | json_check '.'"
t_fails "a failed command that printed nothing fails" 'empty input' bash -c "false | json_check '.'"
t_fails "invalid JSON fails" 'failed on input' bash -c "echo 'not json' | json_check '.'"
t_fails "truncated JSON fails" 'failed on input' bash -c "echo '{\"items\": [' | json_check '.items'"
t_fails "false result fails" 'gave false' bash -c "echo '{\"items\": []}' | json_check '.items | length > 0'"
t_fails "null result fails" 'gave null' bash -c "echo '{}' | json_check '.status'"
t_fails "no result fails" 'gave no result' bash -c "echo '{\"items\": []}' | json_check '.items[]'"
t_fails "the last result counts" 'gave false' bash -c "echo '[true, false]' | json_check '.[]'"
t_fails "a filter error fails" 'failed on input' bash -c "echo '{\"a\": 1}' | json_check '.a | keys'"
t_ok "true result passes" bash -c "echo '{\"items\": [1]}' | json_check '.items | length > 0'"
t_ok "a non-boolean result passes" bash -c "echo '{\"a\": \"x\"}' | json_check '.a'"
t_ok "jq options pass through" bash -c "echo '{\"n\": \"web\"}' | json_check --arg n web '.n == \$n'"
t_fails "jq options pass through (mismatch)" 'gave false' bash -c "echo '{\"n\": \"web\"}' | json_check --arg n db '.n == \$n'"
# The same in this shell, as the tests call it outside bash -c.
echo '{"reason": "DriftCorrected"}' | json_check '.reason == "DriftCorrected"'
t_eq "in-process true passes" 0 "$?"
printf '' | json_check '.reason == "DriftCorrected"' 2>/dev/null
t_eq "in-process empty input fails" 1 "$?"
t_done
