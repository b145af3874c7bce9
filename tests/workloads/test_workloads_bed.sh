#!/usr/bin/env bash
# The opt-in workload test bed (hack/cluster.sh up N --workloads), against
# its own two clusters in a fresh PLUMB_TESTBED, torn down at the end:
#  - in each cluster a Deployment of 3 replicas becomes Available with
#    readyReplicas 3 (controller-manager, scheduler and kwok all play);
#  - a Job completes (succeeded 1, condition Complete);
#  - a Deployment whose pod template carries KWOK's
#    pod-container-running-failed chaos label has pods (Failed, reason
#    containerFailed) but no available replica and no Available condition
#    in 30 s, sampled every second;
#  - a Namespace holding a Deployment finishes deleting;
#  - down stops every process up started.
# It prints what the bed costs: `up 2` with and without --workloads (same
# run, binaries already built), and per cluster the RSS of the added
# processes (kube-controller-manager + kube-scheduler + kwok) against
# kube-apiserver + etcd's.
#
#   make test-workloads
#   bash tests/workloads/test_workloads_bed.sh
#
# Not part of make test: the first run builds kube-controller-manager,
# kube-scheduler and kwok (hack/build-workloads.sh), which takes minutes.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tests/lib.sh"

bash "$root/hack/build-k8s.sh" >/dev/null || { echo "FAIL: no Kubernetes binaries"; exit 1; }
bash "$root/hack/build-workloads.sh" >/dev/null || { echo "FAIL: no workload binaries"; exit 1; }

plain=$(mktemp -d /tmp/plumb-testbed.XXXXXX)
bed=$(mktemp -d /tmp/plumb-testbed.XXXXXX)
rmdir "$plain" "$bed"
cleanup() {
	PLUMB_TESTBED=$plain bash "$root/hack/cluster.sh" down
	PLUMB_TESTBED=$bed bash "$root/hack/cluster.sh" down
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# The cost of up 2 without and then with --workloads, one after the other.
t0=$(now)
PLUMB_TESTBED=$plain bash "$root/hack/cluster.sh" up 2 2>/dev/null
t_eq "up 2 (plain) succeeds" 0 $?
t1=$(now)
PLUMB_TESTBED=$plain bash "$root/hack/cluster.sh" down
t2=$(now)
PLUMB_TESTBED=$bed bash "$root/hack/cluster.sh" up 2 --workloads
t_eq "up 2 --workloads succeeds" 0 $?
t3=$(now)
echo "COST up 2: $(elapsed "$t0" "$t1") s plain, $(elapsed "$t2" "$t3") s with --workloads"

export PLUMB_TESTBED=$bed
k() { local c=$1; shift; "$bed/bin/kubectl" --kubeconfig "$bed/clusters/$c/kubeconfig" "$@"; }

# until_json SECONDS FILTER CMD…: polls CMD's JSON until FILTER holds.
until_json() {
	local secs=$1 filter=$2 deadline
	shift 2
	deadline=$((SECONDS + secs))
	while ((SECONDS < deadline)); do
		"$@" 2>/dev/null | json_check "$filter" 2>/dev/null && return 0
		sleep 1
	done
	"$@" | json_check "$filter"
}

# deployment NAME REPLICAS [chaos]: with chaos its pods carry the label of
# KWOK's pod-container-running-failed stage, which fails a pod 1-2 s after
# pod-ready made it Running and ready; minReadySeconds 10 then keeps any of
# them from counting as available.
deployment() {
	local labels="app: $1" min=0
	[[ ${3:-} == chaos ]] && labels="$labels, pod-container-running-failed.stage.kwok.x-k8s.io: \"true\"" min=10
	cat <<-YAML
		apiVersion: apps/v1
		kind: Deployment
		metadata: {name: $1}
		spec:
		  replicas: $2
		  minReadySeconds: $min
		  selector: {matchLabels: {app: $1}}
		  template:
		    metadata: {labels: {$labels}}
		    spec:
		      containers: [{name: main, image: registry.k8s.io/pause:3.10}]
	YAML
}

rss_kb() { # PIDFILE…: summed VmRSS in kB
	local f sum=0 r
	for f in "$@"; do
		r=$(awk '/^VmRSS:/ {print $2}' "/proc/$(cat "$f")/status" 2>/dev/null)
		sum=$((sum + ${r:-0}))
	done
	echo "$sum"
}

for c in c1 c2; do
	d=$bed/clusters/$c
	t_ok "$c: controller-manager, scheduler, kwok running" \
		bash -c "kill -0 \$(cat '$d/controller-manager.pid') && kill -0 \$(cat '$d/scheduler.pid') && kill -0 \$(cat '$d/kwok.pid')"
	t_eq "$c: 2 fake nodes Ready" 2 \
		"$(k $c get nodes -o json | jq '[.items[] | select(any(.status.conditions[]; .type == "Ready" and .status == "True"))] | length')"

	deployment web 3 | k $c apply -f - >/dev/null
	cat <<-YAML | k $c apply -f - >/dev/null
		apiVersion: batch/v1
		kind: Job
		metadata: {name: once}
		spec:
		  template:
		    spec:
		      restartPolicy: Never
		      containers: [{name: main, image: registry.k8s.io/pause:3.10}]
	YAML
	deployment broken 1 chaos | k $c apply -f - >/dev/null
done

for c in c1 c2; do
	t_ok "$c: Deployment web Available with readyReplicas 3" until_json 60 \
		'.status.readyReplicas == 3 and any(.status.conditions[]; .type == "Available" and .status == "True")' \
		k $c get deployment web -o json
	t_eq "$c: web's pods are on fake nodes" "kwok-$c-" \
		"$(k $c get pods -l app=web -o json | jq -r '[.items[].spec.nodeName | sub("[0-9]+$"; "")] | unique | join(",")')"
	t_ok "$c: Job once Complete" until_json 60 \
		'.status.succeeded == 1 and any(.status.conditions[]; .type == "Complete" and .status == "True")' \
		k $c get job once -o json
done

# The chaos Deployment, sampled every second for 30 s: never an available
# replica, never the Available condition.
declare -A avail=([c1]=0 [c2]=0) cond=([c1]=False [c2]=False)
for _ in $(seq 1 30); do
	for c in c1 c2; do
		j=$(k $c get deployment broken -o json)
		a=$(jq '.status.availableReplicas // 0' <<<"$j")
		((a > avail[$c])) && avail[$c]=$a
		[[ $(jq -r '.status.conditions[]? | select(.type == "Available") | .status' <<<"$j") == True ]] && cond[$c]=True
	done
	sleep 1
done
for c in c1 c2; do
	# The ReplicaSet keeps replacing failed pods: hundreds of them, too
	# much JSON for json_check, so jq counts.
	failed=$(k $c get pods -l app=broken -o json |
		jq '[.items[] | select(.status.phase == "Failed" and .status.containerStatuses[0].state.terminated.reason == "containerFailed")] | length')
	t_ok "$c: Deployment broken has pods that failed (containerFailed): ${failed:-none}" test "${failed:-0}" -gt 0
	t_eq "$c: Deployment broken: no available replica in 30 s" 0 "${avail[$c]}"
	t_eq "$c: Deployment broken: never Available in 30 s" False "${cond[$c]}"
	k $c delete deployment broken --wait=false >/dev/null
done

for c in c1 c2; do
	k $c create namespace doomed >/dev/null
	deployment web 2 | k $c -n doomed apply -f - >/dev/null
	until_json 60 '.status.readyReplicas == 2' k $c -n doomed get deployment web -o json >/dev/null
	k $c delete namespace doomed --wait=false >/dev/null
done
for c in c1 c2; do
	gone=no
	for _ in $(seq 1 90); do
		if ! k $c get namespace doomed >/dev/null 2>&1; then gone=yes; break; fi
		sleep 1
	done
	t_eq "$c: Namespace doomed (with a Deployment) finishes deleting" yes "$gone"
done

for c in c1 c2; do
	d=$bed/clusters/$c
	added=$(rss_kb "$d/controller-manager.pid" "$d/scheduler.pid" "$d/kwok.pid")
	base=$(rss_kb "$d/apiserver.pid" "$d/etcd.pid")
	echo "COST $c RSS: controller-manager $(rss_kb "$d/controller-manager.pid") kB + scheduler $(rss_kb "$d/scheduler.pid") kB + kwok $(rss_kb "$d/kwok.pid") kB = $((added / 1024)) MiB added; apiserver + etcd $((base / 1024)) MiB"
	t_ok "$c: RSS of the added processes measured" test "$added" -gt 0
done

pids=$(cat "$bed"/clusters/*/*.pid)
bash "$root/hack/cluster.sh" down
left=
for p in $pids; do kill -0 "$p" 2>/dev/null && left+=" $p"; done
t_eq "down stops every process up started" "" "$left"
t_done
