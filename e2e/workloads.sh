# A test bed of its own where workloads roll out, for the end-to-end tests
# marked "# Test bed: workloads": hack/cluster.sh up N --workloads in a fresh
# PLUMB_TESTBED (kube-controller-manager, kube-scheduler and kwok's fake
# nodes beside each kube-apiserver). Source it after tests/lib.sh, call
# workloads_bed N, then source e2e/lib.sh: its e2e_cleanup stops the bed
# (workloads_bed_down) at exit.

workloads_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

workloads_bed_down() { bash "$workloads_root/hack/cluster.sh" down >/dev/null 2>&1; }

# workloads_bed N: clusters c1..cN; exports PLUMB_TESTBED and PLUMB_K8S_BIN.
workloads_bed() {
	export PLUMB_K8S_BIN PLUMB_TESTBED
	PLUMB_K8S_BIN=$(bash "$workloads_root/hack/build-k8s.sh") || { echo "FAIL: no Kubernetes binaries"; return 1; }
	PLUMB_TESTBED=$(mktemp -d /tmp/plumb-testbed.XXXXXX)
	rmdir "$PLUMB_TESTBED"
	if ! bash "$workloads_root/hack/cluster.sh" up "$1" --workloads >"$PLUMB_TESTBED.up.log" 2>&1; then
		cat "$PLUMB_TESTBED.up.log"
		rm -f "$PLUMB_TESTBED.up.log"
		workloads_bed_down
		echo "FAIL: the workloads test bed did not come up"
		return 1
	fi
	rm -f "$PLUMB_TESTBED.up.log"
	trap workloads_bed_down EXIT   # until e2e/lib.sh sets e2e_cleanup
}
