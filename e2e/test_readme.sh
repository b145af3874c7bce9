#!/usr/bin/env bash
# The README cannot rot: starts the demo (hack/demo.sh, its own clusters, Git
# server and plumbd — the story of `make demo` checks itself step by step),
# then runs every ```sh block of README.md against it as a user would, and
# checks that the README names every metric plumbd exposes, every plumbctl
# command, every make target it shows and every file it links to.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/tests/lib.sh"
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$root/$BUILD
WORK=$(mktemp -d /tmp/plumb-readme.XXXXXX)
DEMO=$WORK/demo
cleanup() {
	PLUMB_DEMO_DIR=$DEMO bash "$root/hack/demo.sh" down >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT

# ---- static: links, make targets, plumbctl commands ----------------------------------
while read -r link; do
	t_ok "README link $link exists" test -e "$root/$link"
done < <(grep -oE '\]\([^)#:]+\)' "$root/README.md" | sed -E 's/^\]\(//; s/\)$//' | sort -u)
while read -r target; do
	t_ok "make $target is a Makefile target" grep -qE "^$target:" "$root/Makefile"
done < <(awk '/^```make$/ {m=1; next} /^```/ {m=0} m && /^make / {print $2}' "$root/README.md" | sort -u)
while read -r cmd; do
	t_ok "README documents plumbctl $cmd" grep -q "plumbctl $cmd" "$root/README.md"
done < <("$BUILD/plumbctl" --help | awk '/^commands:/ {c=1; next} /^$/ {if (c) exit} c && /^  [a-z]/ {print $1}')

# ---- the demo ---------------------------------------------------------------------------
if ! PLUMB_DEMO_DIR=$DEMO BUILD=$BUILD bash "$root/hack/demo.sh" up >"$WORK/demo.log" 2>&1; then
	t_ok "make demo runs to the end" false
	tail -40 "$WORK/demo.log"
	t_done
	exit 1
fi
t_ok "make demo runs to the end" grep -q "The demo is up" "$WORK/demo.log"
t_ok "the demo says how to stop it" grep -q "make demo-down" "$WORK/demo.log"

# ---- every sh block of the README, as a user in the demo ---------------------------------
# The user's shell: plumbctl and kubectl on PATH, KUBECONFIG at the management
# cluster, the repository's files at hand, and a kubeconfig for the "prod-eu"
# the README registers (the management cluster itself, so it disturbs nothing).
user=$WORK/user
mkdir -p "$user/bin"
ln -s "$root/manifests" "$root/examples" "$user/"
ln -s "$BUILD/plumbctl" "$user/bin/plumbctl"
cp "$DEMO/testbed/clusters/c1/kubeconfig" "$user/prod-eu.kubeconfig"
awk -v dir="$WORK" '/^```sh$/ {n++; f=sprintf("%s/block-%02d.sh", dir, n); next} /^```/ {f=""; next} f {print > f}' "$root/README.md"
blocks=("$WORK"/block-*.sh)
t_ok "the README has sh blocks" test -e "${blocks[0]}"
for b in "${blocks[@]}"; do
	first=$(grep -m1 -vE '^\s*(#|$)' "$b")
	if (cd "$user" && PATH="$user/bin:$DEMO/testbed/bin:$PATH" KUBECONFIG=$DEMO/testbed/clusters/c1/kubeconfig \
		HOME=$user bash -euo pipefail "$b") >"$b.out" 2>&1; then
		t_ok "README block: $first" true
	else
		t_ok "README block: $first" false
		sed 's/^/    /' "$b.out" | tail -20
	fi
done
t_ok "the README's Cluster prod-eu was registered" grep -q prod-eu "$(ls "$WORK"/block-*.sh.out | head -1)"

# ---- metrics: the README names every plumb_ and process_ metric plumbd exposes ------------
port=$(cat "$DEMO/metrics-port")
curl -s "http://127.0.0.1:$port/metrics" | awk '/^# TYPE/ {print $3}' | sort -u >"$WORK/metrics"
t_ok "plumbd exposes metrics" test -s "$WORK/metrics"
while read -r m; do
	t_ok "README documents $m" grep -q "\`$m\`" "$root/README.md"
done <"$WORK/metrics"

t_done
