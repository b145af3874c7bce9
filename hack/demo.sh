#!/usr/bin/env bash
# plumb's demo: everything on this machine, step by step.
#
#   hack/demo.sh up      (make demo)       start it all and walk through the story
#   hack/demo.sh down    (make demo-down)  stop every process and remove the state
#
# What `up` does: starts three local clusters (hack/cluster.sh: c1 is the
# management cluster, c2 and c3 the targets), a local HTTPS Git server
# (hack/git-servers.sh) holding the example repository of examples/repo,
# installs the CRDs into c1, registers c2 and c3 as Clusters "staging-eu" and
# "prod-us" (kubeconfig Secrets + labels), creates the GitSync of
# examples/demo/gitsync.yaml and runs plumbd. Then, with plumbctl:
#   1. both clusters converge on the first commit;
#   2. a commit lands in both;
#   3. an out-of-band edit in one cluster is corrected;
#   4. a bad commit stalls the GitSync with file and line, nothing changes in
#      the clusters, and the fix recovers;
#   5. plumbctl diff shows what an uncommitted change would do.
# Each step checks what it shows: the demo fails loudly if plumb misbehaves.
# State lives in $PLUMB_DEMO_DIR (default /tmp/plumb-demo); binaries come from
# $BUILD (default build).
set -Eeuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
demo=${PLUMB_DEMO_DIR:-/tmp/plumb-demo}
build=${BUILD:-build}
[[ $build = /* ]] || build=$root/$build
ns=plumb

bold() { if [[ -t 1 ]]; then printf '\n\033[1m%s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }
say() { echo "   $*"; }
die() { echo "demo: $*" >&2; exit 1; }
# run CMD…: shows a command, then runs it.
run() { printf '   $ %s\n' "$*"; "$@" 2>&1 | sed 's/^/     /'; return "${PIPESTATUS[0]}"; }

down() {
	if [[ -f $demo/plumbd.pid ]]; then
		local pid
		pid=$(cat "$demo/plumbd.pid")
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid"
			for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -0 "$pid" 2>/dev/null && kill -9 "$pid" || true
		fi
		rm -f "$demo/plumbd.pid"
	fi
	[[ -d $demo/git ]] && bash "$here/git-servers.sh" down "$demo/git" || true
	[[ -d $demo/testbed ]] && PLUMB_TESTBED=$demo/testbed bash "$here/cluster.sh" down || true
	rm -rf "$demo"
	echo "demo: stopped; nothing left running"
}

up() {
	[[ -x $build/plumbd && -x $build/plumbctl ]] || die "build first: make (looked in $build)"
	if [[ -e $demo ]]; then
		die "$demo exists: the demo is already up (or was interrupted). Run: make demo-down"
	fi
	mkdir -p "$demo"
	# Anything failing from here leaves a partial demo: tell how to clean it.
	trap 'echo "demo: failed; logs in $demo (plumbd.log). Clean up with: make demo-down" >&2' ERR

	bold "Starting three local clusters (c1 = management, c2 and c3 = targets)"
	export PLUMB_TESTBED=$demo/testbed
	bash "$here/cluster.sh" up 3
	export PATH=$demo/testbed/bin:$PATH
	local kc1=$demo/testbed/clusters/c1/kubeconfig
	local kc2=$demo/testbed/clusters/c2/kubeconfig
	local kc3=$demo/testbed/clusters/c3/kubeconfig
	export KUBECONFIG=$kc1

	bold "Starting a local HTTPS Git server with the example repository"
	bash "$here/git-servers.sh" up "$demo/git"
	# shellcheck disable=SC1091
	source "$demo/git/env"
	git init -q --bare -b main "$GIT_REPOS/shop-config.git"
	local work=$demo/shop-config
	git init -q -b main "$work"
	cp -r "$root/examples/repo/." "$work/"
	git -C "$work" add -A
	git -C "$work" -c user.name=Alice -c user.email=alice@example.com commit -q -m "shop: first version"
	git -C "$work" push -q "$GIT_REPOS/shop-config.git" main
	local url=$HTTPS_BASIC_URL/shop-config.git
	say "repository: $url (basic auth, its own CA)"

	bold "Installing plumb's CRDs into c1 and registering the two target clusters"
	run kubectl apply -f manifests/crds/
	run kubectl wait --for=condition=Established crd/gitsyncs.plumb.dev crd/clusters.plumb.dev
	run kubectl create namespace plumb
	run kubectl -n plumb create secret generic staging-eu-kubeconfig --from-file=kubeconfig="$kc2"
	run kubectl -n plumb create secret generic prod-us-kubeconfig --from-file=kubeconfig="$kc3"
	run kubectl apply -f examples/demo/clusters.yaml
	# The Git credentials go in from files, so the password is never on a command line.
	mkdir -m 700 "$demo/git-auth"
	printf '%s' "$BASIC_USER" >"$demo/git-auth/username"
	printf '%s' "$BASIC_PASSWORD" >"$demo/git-auth/password"
	cp "$CA_FILE" "$demo/git-auth/caFile"
	run kubectl -n plumb create secret generic shop-git --from-file="$demo/git-auth"
	sed "s|REPO_URL|$url|" examples/demo/gitsync.yaml >"$demo/gitsync.yaml"
	run kubectl apply -f "$demo/gitsync.yaml"

	bold "Running plumbd (log: $demo/plumbd.log)"
	"$build/plumbd" --kubeconfig "$kc1" --namespace plumb --metrics-addr 127.0.0.1:0 \
		--health-addr 127.0.0.1:0 --cache-dir "$demo/cache" >"$demo/plumbd.log" 2>&1 &
	echo $! >"$demo/plumbd.pid"
	local mport=""
	for _ in $(seq 1 100); do
		mport=$(jq -r 'select(.msg == "plumbd started") | .metrics_port' "$demo/plumbd.log" 2>/dev/null | head -1)
		[[ -n $mport ]] && break
		kill -0 "$(cat "$demo/plumbd.pid")" 2>/dev/null || { cat "$demo/plumbd.log"; die "plumbd exited"; }
		sleep 0.1
	done
	[[ -n $mport ]] || die "plumbd did not start (see $demo/plumbd.log)"
	echo "$mport" >"$demo/metrics-port"
	say "metrics and webhooks on http://127.0.0.1:$mport"
	local plumbctl=$build/plumbctl

	bold "1. Both clusters converge on the first commit"
	run "$plumbctl" sync shop -n plumb --wait --timeout 90s
	run "$plumbctl" status -n plumb
	run kubectl --kubeconfig "$kc2" -n shop get configmaps,widgets
	run kubectl --kubeconfig "$kc3" -n shop get configmaps,widgets
	[[ $(kubectl --kubeconfig "$kc2" -n shop get cm shop-env -o jsonpath='{.data.replicas}') == 1 ]] ||
		die "staging-eu should have the staging shop-env"
	[[ $(kubectl --kubeconfig "$kc3" -n shop get cm shop-env -o jsonpath='{.data.replicas}') == 3 ]] ||
		die "prod-us should have the prod shop-env"
	kubectl --kubeconfig "$kc2" -n shop get widget eu-special >/dev/null || die "eu-special should be in the EU cluster"
	! kubectl --kubeconfig "$kc3" -n shop get widget eu-special >/dev/null 2>&1 || die "eu-special must not be in prod-us"
	say "staging-eu got the staging settings and the EU-only widget; prod-us the prod ones."

	bold "2. A commit lands in both clusters"
	sed -i 's/LOG_LEVEL: info/LOG_LEVEL: debug/' "$work/config/shop.yaml"
	run git -C "$work" -c user.name=Alice -c user.email=alice@example.com commit -q -am "shop: debug logs"
	run git -C "$work" push -q "$GIT_REPOS/shop-config.git" main
	run "$plumbctl" sync shop -n plumb --wait --timeout 60s
	for kc in "$kc2" "$kc3"; do
		[[ $(kubectl --kubeconfig "$kc" -n shop get cm shop-config -o jsonpath='{.data.LOG_LEVEL}') == debug ]] ||
			die "the commit did not land in $kc"
	done
	run kubectl --kubeconfig "$kc3" -n shop get cm shop-config -o jsonpath='{.data.LOG_LEVEL}{"\n"}'

	bold "3. An out-of-band edit is corrected"
	run kubectl --kubeconfig "$kc3" -n shop patch configmap shop-config --type merge -p '{"data":{"LOG_LEVEL":"trace"}}'
	local v=""
	for _ in $(seq 1 50); do
		v=$(kubectl --kubeconfig "$kc3" -n shop get cm shop-config -o jsonpath='{.data.LOG_LEVEL}')
		[[ $v == debug ]] && break
		sleep 0.2
	done
	[[ $v == debug ]] || die "the drift was not corrected (LOG_LEVEL=$v)"
	run kubectl --kubeconfig "$kc3" -n shop get cm shop-config -o jsonpath='{.data.LOG_LEVEL}{"\n"}'
	run kubectl -n plumb get events --field-selector involvedObject.name=shop
	say "plumb saw the edit through its watch and put Git's value back."

	bold "4. A bad commit stalls with file and line; the fix recovers"
	printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\n  namespace: shop\ndata:\n  a: [unclosed\n' >"$work/config/broken.yaml"
	git -C "$work" add -A
	run git -C "$work" -c user.name=Bob -c user.email=bob@example.com commit -q -m "shop: a typo"
	run git -C "$work" push -q "$GIT_REPOS/shop-config.git" main
	local rc=0
	run "$plumbctl" sync shop -n plumb --wait --timeout 60s || rc=$?
	[[ $rc -eq 1 ]] || die "plumbctl sync should have exited 1 on the bad commit (got $rc)"
	run "$plumbctl" status -n plumb
	"$plumbctl" status -n plumb | grep -q 'config/broken.yaml:' || die "the status should name config/broken.yaml"
	[[ $(kubectl --kubeconfig "$kc2" -n shop get cm shop-config -o jsonpath='{.data.LOG_LEVEL}') == debug ]] ||
		die "the last good revision should have stayed applied"
	say "nothing was applied or pruned: the clusters keep the last good commit."
	run git -C "$work" rm -q config/broken.yaml
	run git -C "$work" -c user.name=Bob -c user.email=bob@example.com commit -q -m "shop: fix the typo"
	run git -C "$work" push -q "$GIT_REPOS/shop-config.git" main
	run "$plumbctl" sync shop -n plumb --wait --timeout 60s

	bold "5. What would an uncommitted change do? plumbctl diff"
	sed -i 's/replicas: "3"/replicas: "5"/' "$work/config/env-prod.yaml"
	rc=0
	run "$plumbctl" diff "$work" --gitsync shop --cluster prod-us -n plumb >"$demo/diff.out" || rc=$?
	cat "$demo/diff.out"
	[[ $rc -eq 1 ]] || die "plumbctl diff should have exited 1 (differences), got $rc"
	grep -q 'updated ConfigMap shop/shop-env' "$demo/diff.out" || die "the diff should show shop-env updated"
	grep -q '+  *replicas: "5"' "$demo/diff.out" || die "the diff should show replicas 5"
	git -C "$work" checkout -q config/env-prod.yaml
	[[ $(kubectl --kubeconfig "$kc3" -n shop get cm shop-env -o jsonpath='{.data.replicas}') == 3 ]] ||
		die "plumbctl diff must not change the cluster"
	say "exit code 1 means differences, 0 none (like kubectl diff); nothing was written."

	trap - ERR
	bold "The demo is up. Look around:"
	cat <<EOF
   export KUBECONFIG=$kc1          # the management cluster (c1)
   $plumbctl status -n plumb
   kubectl get gitsyncs,clusters.plumb.dev -n plumb
   kubectl --kubeconfig $kc2 -n shop get all,cm,widgets   # staging-eu (c2)
   kubectl --kubeconfig $kc3 -n shop get all,cm,widgets   # prod-us (c3)
   curl -s http://127.0.0.1:$mport/metrics | grep ^plumb_
   git -C $work log --oneline                # the config repo; push with: git -C $work push $GIT_REPOS/shop-config.git main
   tail -f $demo/plumbd.log

   Stop everything: make demo-down
EOF
}

cd "$root"
case ${1:-} in
up) up ;;
down) down ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
