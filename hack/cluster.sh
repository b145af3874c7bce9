#!/usr/bin/env bash
# Local Kubernetes test bed: N independent clusters on loopback, each its own
# etcd and kube-apiserver, CA, serving certificate, client-certificate admin
# kubeconfig, service-account signing keys, RBAC and an audit log.
#
#   hack/cluster.sh up [N] [--workloads] start clusters c1..cN (default 3)
#   hack/cluster.sh down                 stop everything and remove the test bed dir
#   hack/cluster.sh status               list clusters and whether they answer
#   hack/cluster.sh stop-apiserver NAME  stop one cluster's apiserver (etcd stays)
#   hack/cluster.sh start-apiserver NAME start it again on the same port
#   hack/cluster.sh kubectl NAME ARGS…   kubectl against cluster NAME
#
# The test bed lives in $PLUMB_TESTBED (default /tmp/plumb-testbed):
#   clusters/<name>/{kubeconfig,ca.crt,ca.key,audit.log,env,…}
# Ports are found free at start, never hard-coded.
#
# With --workloads (opt-in; no test under e2e/ or tests/integration/ uses it)
# each cluster also runs kube-controller-manager, kube-scheduler and a kwok
# controller that plays the kubelet for a few fake Nodes, so Deployments roll
# out, Jobs complete and namespaces finish deleting; binaries from
# hack/build-workloads.sh, KWOK stages node/fast, pod/fast and
# pod/chaos/pod-container-running-failed from the kwok module.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
testbed=${PLUMB_TESTBED:-/tmp/plumb-testbed}

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

# A port is taken when something listens on it or a test bed beside this
# one (its sibling directories, as hack/run-tests.sh and the tests make
# them) has handed it out and may not have bound it yet.
port_in_use() {
	local p=$1
	ss -Htan "sport = :$p" 2>/dev/null | grep -q . && return 0
	cat "$testbed/.ports" "$(dirname "$testbed")"/*/.ports 2>/dev/null | grep -qx "$p"
}

# Ports come from 20000-32699: below the kernel's ephemeral range (32768+),
# so an outgoing connection can never be holding one when a server binds it.
# Choosing and recording one is done under a lock, so two test beds coming
# up at once never pick the same.
free_port() {
	local p lock
	exec {lock}>"${TMPDIR:-/tmp}/plumb-testbed-ports.lock"
	flock "$lock"
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 12700))
		if ! port_in_use "$p"; then
			echo "$p" >>"$testbed/.ports"
			exec {lock}>&-
			echo "$p"
			return 0
		fi
	done
	exec {lock}>&-
	die "no free port found"
}

make_certs() {
	local d=$1 name=$2
	(
		cd "$d"
		openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
			-subj "/CN=plumb-test-ca-$name" >/dev/null 2>&1
		cat >serving.ext <<-EOF
			subjectAltName=IP:127.0.0.1,IP:::1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
			extendedKeyUsage=serverAuth
			keyUsage=digitalSignature,keyEncipherment
		EOF
		openssl req -newkey rsa:2048 -nodes -keyout serving.key -out serving.csr \
			-subj "/CN=kube-apiserver" >/dev/null 2>&1
		openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
			-out serving.crt -days 3650 -extfile serving.ext >/dev/null 2>&1
		bash "$here/cluster.sh" sign-client "$d" admin system:masters admin
		openssl genrsa -out sa.key 2048 >/dev/null 2>&1
		openssl rsa -in sa.key -pubout -out sa.pub >/dev/null 2>&1
		rm -f serving.csr serving.ext
	)
}

# sign-client DIR CN GROUP OUTBASE: a client certificate signed by the cluster CA.
sign_client() {
	local d=$1 cn=$2 group=$3 out=$4 subj="/CN=$2"
	[[ -n $group ]] && subj="/O=$group/CN=$cn"
	printf 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' >"$d/$out.ext"
	openssl req -newkey rsa:2048 -nodes -keyout "$d/$out.key" -out "$d/$out.csr" -subj "$subj" >/dev/null 2>&1
	openssl x509 -req -in "$d/$out.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
		-out "$d/$out.crt" -days 3650 -extfile "$d/$out.ext" >/dev/null 2>&1
	rm -f "$d/$out.csr" "$d/$out.ext"
}

# kubeconfig DIR USERBASE OUT: a kubeconfig with the certificate data embedded.
write_kubeconfig() {
	local d=$1 user=$2 out=$3 name
	name=$(basename "$d")
	# shellcheck disable=SC1091
	source "$d/env"
	cat >"$out" <<-EOF
		apiVersion: v1
		kind: Config
		clusters:
		- name: $name
		  cluster:
		    server: https://127.0.0.1:$APISERVER_PORT
		    certificate-authority-data: $(base64 -w0 <"$d/ca.crt")
		users:
		- name: $user
		  user:
		    client-certificate-data: $(base64 -w0 <"$d/$user.crt")
		    client-key-data: $(base64 -w0 <"$d/$user.key")
		contexts:
		- name: $name
		  context:
		    cluster: $name
		    user: $user
		current-context: $name
	EOF
	chmod 600 "$out"
}

write_scripts() {
	local d=$1 name=$2 bin=$3
	# shellcheck disable=SC1091
	source "$d/env"
	cat >"$d/audit-policy.yaml" <<-'EOF'
		apiVersion: audit.k8s.io/v1
		kind: Policy
		omitStages: ["RequestReceived"]
		rules:
		- level: Metadata
	EOF
	cat >"$d/run-etcd.sh" <<-EOF
		#!/bin/sh
		exec "$bin/etcd" --name "$name" --data-dir "$d/etcd" \\
		  --listen-client-urls http://127.0.0.1:$ETCD_PORT --advertise-client-urls http://127.0.0.1:$ETCD_PORT \\
		  --listen-peer-urls http://127.0.0.1:$ETCD_PEER_PORT --initial-advertise-peer-urls http://127.0.0.1:$ETCD_PEER_PORT \\
		  --initial-cluster "$name=http://127.0.0.1:$ETCD_PEER_PORT" --log-level error \\
		  --quota-backend-bytes 4294967296 >>"$d/etcd.log" 2>&1
	EOF
	cat >"$d/run-apiserver.sh" <<-EOF
		#!/bin/sh
		exec "$bin/kube-apiserver" \\
		  --etcd-servers=http://127.0.0.1:$ETCD_PORT \\
		  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=$APISERVER_PORT \\
		  --tls-cert-file="$d/serving.crt" --tls-private-key-file="$d/serving.key" \\
		  --client-ca-file="$d/ca.crt" --authorization-mode=RBAC \\
		  --service-account-key-file="$d/sa.pub" --service-account-signing-key-file="$d/sa.key" \\
		  --service-account-issuer=https://kubernetes.default.svc.cluster.local \\
		  --service-cluster-ip-range=10.0.0.0/24 --endpoint-reconciler-type=none \\
		  --audit-policy-file="$d/audit-policy.yaml" --audit-log-path="$d/audit.log" \\
		  --audit-log-format=json --audit-log-mode=blocking --audit-log-maxsize=0 \\
		  --cert-dir="$d/certs" --profiling=false --v=0 >>"$d/apiserver.log" 2>&1
	EOF
	chmod +x "$d/run-etcd.sh" "$d/run-apiserver.sh"
}

# The fake Nodes each --workloads cluster gets; kwok manages the ones that
# carry the kwok.x-k8s.io/node=fake annotation.
workload_nodes=2

# kwok_stages OUT: the KWOK Stage documents the bed plays, joined into one
# file for kwok's --config, taken from the kwok module pinned in
# hack/kwok/go.mod (in the Go module cache once build-workloads.sh ran).
kwok_stages() {
	local out=$1 mod f r
	mod=$(cd "$here/kwok" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' sigs.k8s.io/kwok) ||
		die "cannot find the kwok module (run hack/build-workloads.sh)"
	: >"$out"
	for r in node/fast pod/fast; do
		for f in $(awk '$1 == "-" {print $2}' "$mod/kustomize/stage/$r/kustomization.yaml"); do
			{ echo "---"; cat "$mod/kustomize/stage/$r/$f"; } >>"$out"
		done
	done
	{ echo "---"; cat "$mod/kustomize/stage/pod/chaos/pod-container-running-failed.yaml"; } >>"$out"
}

# start_workloads DIR NAME WBIN STAGES: kube-controller-manager, kube-scheduler
# and kwok for one cluster, each with its own client certificate and
# kubeconfig, and the fake Nodes.
start_workloads() {
	local d=$1 name=$2 wbin=$3 stages=$4 i u
	sign_client "$d" system:kube-controller-manager "" kube-controller-manager
	sign_client "$d" system:kube-scheduler "" kube-scheduler
	sign_client "$d" kwok system:masters kwok
	for u in kube-controller-manager kube-scheduler kwok; do
		write_kubeconfig "$d" "$u" "$d/$u.kubeconfig"
	done
	# Controllers: what rolls Deployments and Jobs out, gives namespaces
	# their default ServiceAccount and kube-root-ca.crt, deletes namespaces
	# and owned objects. Tokens are signed with the apiserver's sa.key.
	cat >"$d/run-controller-manager.sh" <<-EOF
		#!/bin/sh
		exec "$wbin/kube-controller-manager" --kubeconfig="$d/kube-controller-manager.kubeconfig" \
		  --leader-elect=false --secure-port=0 --use-service-account-credentials=true \
		  --service-account-private-key-file="$d/sa.key" --root-ca-file="$d/ca.crt" \
		  --controllers=deployment-controller,replicaset-controller,job-controller,namespace-controller,garbage-collector-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller,pod-garbage-collector-controller,ttl-after-finished-controller \
		  --concurrent-gc-syncs=2 --v=1 >>"$d/controller-manager.log" 2>&1
	EOF
	cat >"$d/run-scheduler.sh" <<-EOF
		#!/bin/sh
		exec "$wbin/kube-scheduler" --kubeconfig="$d/kube-scheduler.kubeconfig" \
		  --leader-elect=false --secure-port=0 --v=1 >>"$d/scheduler.log" 2>&1
	EOF
	cat >"$d/run-kwok.sh" <<-EOF
		#!/bin/sh
		exec "$wbin/kwok" --kubeconfig="$d/kwok.kubeconfig" --config="$stages" \
		  --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
		  --cidr=10.244.0.0/16 --node-ip=127.0.0.1 >>"$d/kwok.log" 2>&1
	EOF
	chmod +x "$d/run-controller-manager.sh" "$d/run-scheduler.sh" "$d/run-kwok.sh"
	start_bg "$d/controller-manager.pid" "$d/run-controller-manager.sh"
	start_bg "$d/scheduler.pid" "$d/run-scheduler.sh"
	start_bg "$d/kwok.pid" "$d/run-kwok.sh"
	for i in $(seq 1 "$workload_nodes"); do
		cat <<-EOF
			apiVersion: v1
			kind: Node
			metadata:
			  name: kwok-$name-$i
			  annotations: {kwok.x-k8s.io/node: fake}
			  labels: {type: kwok, kubernetes.io/hostname: kwok-$name-$i, kubernetes.io/os: linux}
			status:
			  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
			  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
		EOF
		echo "---"
	done | "$testbed/bin/kubectl" --kubeconfig "$d/kubeconfig" apply -f - >/dev/null
	# The apiserver taints a new Node not-ready; the node lifecycle
	# controller, which would lift it, is not run (kwok posts no heartbeats
	# it would expect), so the bed lifts it once.
	"$testbed/bin/kubectl" --kubeconfig "$d/kubeconfig" taint nodes -l type=kwok \
		node.kubernetes.io/not-ready:NoSchedule- >/dev/null
}

# wait_workloads DIR: the fake Nodes Ready (kwok plays them) and the default
# ServiceAccount made (the controller-manager runs), so a Pod can be created.
wait_workloads() {
	local d=$1 deadline=$((SECONDS + 90)) k ready p
	k=("$testbed/bin/kubectl" --kubeconfig "$d/kubeconfig")
	while ((SECONDS < deadline)); do
		ready=$("${k[@]}" get nodes -l type=kwok -o json 2>/dev/null |
			jq '[.items[] | select(any(.status.conditions[]?; .type == "Ready" and .status == "True"))] | length')
		if [[ ${ready:-0} -ge $workload_nodes ]] && "${k[@]}" get serviceaccount default >/dev/null 2>&1; then
			return 0
		fi
		for p in controller-manager scheduler kwok; do
			kill -0 "$(cat "$d/$p.pid")" 2>/dev/null || { tail -20 "$d/$p.log" >&2; die "$(basename "$d"): $p exited"; }
		done
		sleep 0.5
	done
	tail -5 "$d/controller-manager.log" "$d/kwok.log" >&2
	die "$(basename "$d"): nodes or default ServiceAccount not there after 90s"
}

start_bg() {
	local pidfile=$1 script=$2
	setsid -f sh -c "echo \$\$ >'$pidfile'; exec '$script'" </dev/null >/dev/null 2>&1
	for _ in $(seq 1 50); do
		[[ -s $pidfile ]] && return 0
		sleep 0.1
	done
	die "could not start $script"
}

stop_pid() {
	local pidfile=$1 pid
	[[ -s $pidfile ]] || return 0
	pid=$(cat "$pidfile")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
}

# assign_ports DIR NAME [keep-etcd]: (re)writes DIR/env with free ports.
assign_ports() {
	local d=$1 name=$2 etcd_port etcd_peer_port
	if [[ ${3:-} == keep-etcd ]]; then
		# shellcheck disable=SC1091
		source "$d/env"
		etcd_port=$ETCD_PORT etcd_peer_port=$ETCD_PEER_PORT
	else
		etcd_port=$(free_port) etcd_peer_port=$(free_port)
	fi
	local api_port
	api_port=$(free_port)
	cat >"$d/env" <<-EOF
		NAME=$name
		ETCD_PORT=$etcd_port
		ETCD_PEER_PORT=$etcd_peer_port
		APISERVER_PORT=$api_port
		APISERVER_URL=https://127.0.0.1:$api_port
		KUBECONFIG=$d/kubeconfig
		AUDIT_LOG=$d/audit.log
	EOF
}

# start_etcd DIR NAME BIN: etcd on free ports, healthy, retried on a port race.
start_etcd() {
	local d=$1 name=$2 bin=$3
	for _ in 1 2 3; do
		assign_ports "$d" "$name"
		write_scripts "$d" "$name" "$bin"
		write_kubeconfig "$d" admin "$d/kubeconfig"
		start_bg "$d/etcd.pid" "$d/run-etcd.sh"
		# shellcheck disable=SC1091
		source "$d/env"
		for _ in $(seq 1 100); do
			if curl -sf --max-time 1 "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1; then
				return 0
			fi
			kill -0 "$(cat "$d/etcd.pid")" 2>/dev/null || break
			sleep 0.1
		done
		log "$name: etcd did not start on ports $ETCD_PORT/$ETCD_PEER_PORT; retrying"
		stop_pid "$d/etcd.pid"
		rm -rf "$d/etcd"
	done
	tail -20 "$d/etcd.log" >&2
	die "$name: etcd did not start"
}

wait_ready() {
	local d=$1 deadline=$((SECONDS + ${2:-90}))
	# shellcheck disable=SC1091
	source "$d/env"
	while ((SECONDS < deadline)); do
		if curl -sf --max-time 2 --cacert "$d/ca.crt" --cert "$d/admin.crt" --key "$d/admin.key" \
			"https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1; then
			return 0
		fi
		if [[ -s $d/apiserver.pid ]] && ! kill -0 "$(cat "$d/apiserver.pid")" 2>/dev/null; then
			log "$(basename "$d"): kube-apiserver exited"
			return 1
		fi
		sleep 0.3
	done
	log "$(basename "$d"): not ready after ${2:-90}s"
	return 1
}

cmd_up() {
	local n=3 bin workloads=0 wbin a
	for a in "$@"; do
		case $a in
		--workloads) workloads=1 ;;
		*) n=$a ;;
		esac
	done
	[[ -e $testbed/clusters ]] && die "test bed already up in $testbed (run: hack/cluster.sh down)"
	bin=$(bash "$here/build-k8s.sh")
	((workloads)) && wbin=$(bash "$here/build-workloads.sh")
	mkdir -p "$testbed/clusters"
	ln -sfn "$bin" "$testbed/bin"
	local start=$SECONDS
	for i in $(seq 1 "$n"); do
		local d="$testbed/clusters/c$i"
		mkdir -p "$d/certs"
		make_certs "$d" "c$i" &
	done
	wait
	for i in $(seq 1 "$n"); do
		start_etcd "$testbed/clusters/c$i" "c$i" "$bin"
	done
	for i in $(seq 1 "$n"); do
		start_bg "$testbed/clusters/c$i/apiserver.pid" "$testbed/clusters/c$i/run-apiserver.sh"
	done
	for i in $(seq 1 "$n"); do
		local d="$testbed/clusters/c$i" tries=0
		# Another process may take the port between our check and the bind:
		# then the cluster moves to new ports (etcd keeps its data).
		until wait_ready "$d" 120; do
			tries=$((tries + 1))
			if ((tries >= 3)) || ! grep -q "address already in use" "$d/apiserver.log"; then
				tail -20 "$d/apiserver.log" >&2
				die "c$i: kube-apiserver did not become ready"
			fi
			log "c$i: apiserver port taken; moving"
			assign_ports "$d" "c$i" keep-etcd
			write_scripts "$d" "c$i" "$bin"
			write_kubeconfig "$d" admin "$d/kubeconfig"
			start_bg "$d/apiserver.pid" "$d/run-apiserver.sh"
		done
	done
	if ((workloads)); then
		kwok_stages "$testbed/kwok-stages.yaml"
		for i in $(seq 1 "$n"); do
			start_workloads "$testbed/clusters/c$i" "c$i" "$wbin" "$testbed/kwok-stages.yaml"
		done
		for i in $(seq 1 "$n"); do
			wait_workloads "$testbed/clusters/c$i"
		done
		log "workloads: kube-controller-manager, kube-scheduler, kwok and $workload_nodes fake nodes per cluster"
	fi
	log "$n cluster(s) ready in $((SECONDS - start))s in $testbed ($("$bin/kubectl" --kubeconfig "$testbed/clusters/c1/kubeconfig" version -o json 2>/dev/null | jq -r .serverVersion.gitVersion))"
}

cmd_down() {
	[[ -d $testbed ]] || return 0
	for d in "$testbed"/clusters/*/; do
		[[ -d $d ]] || continue
		stop_pid "$d/kwok.pid"
		stop_pid "$d/scheduler.pid"
		stop_pid "$d/controller-manager.pid"
		stop_pid "$d/apiserver.pid"
		stop_pid "$d/etcd.pid"
	done
	rm -rf "$testbed"
}

cmd_status() {
	for d in "$testbed"/clusters/*/; do
		[[ -d $d ]] || continue
		# shellcheck disable=SC1091
		source "$d/env"
		local state=down
		curl -sf --max-time 2 --cacert "$d/ca.crt" --cert "$d/admin.crt" --key "$d/admin.key" \
			"https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1 && state=ready
		echo "$NAME https://127.0.0.1:$APISERVER_PORT $state kubeconfig=${d}kubeconfig"
	done
}

case ${1:-} in
up) shift; cmd_up "$@" ;;
down) cmd_down ;;
status) cmd_status ;;
stop-apiserver)
	[[ -n ${2:-} ]] || die "usage: stop-apiserver NAME"
	stop_pid "$testbed/clusters/$2/apiserver.pid" ;;
start-apiserver)
	[[ -n ${2:-} ]] || die "usage: start-apiserver NAME"
	d="$testbed/clusters/$2"
	[[ -x $d/run-apiserver.sh ]] || die "no cluster $2 in $testbed"
	start_bg "$d/apiserver.pid" "$d/run-apiserver.sh"
	wait_ready "$d" 120 || { tail -20 "$d/apiserver.log" >&2; die "$2: kube-apiserver did not become ready"; } ;;
sign-client)
	# internal: sign-client DIR CN GROUP OUTBASE
	sign_client "$2" "$3" "$4" "$5" ;;
kubeconfig)
	# kubeconfig NAME USERBASE OUT: a kubeconfig for a client cert made with sign-client
	write_kubeconfig "$testbed/clusters/$2" "$3" "$4" ;;
kubectl)
	name=${2:?usage: kubectl NAME ARGS…}; shift 2
	exec "$testbed/bin/kubectl" --kubeconfig "$testbed/clusters/$name/kubeconfig" "$@" ;;
*)
	sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
	exit 2 ;;
esac
