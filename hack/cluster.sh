#!/usr/bin/env bash
# Local Kubernetes test bed: N independent clusters on loopback, each its own
# etcd and kube-apiserver, CA, serving certificate, client-certificate admin
# kubeconfig, service-account signing keys, RBAC and an audit log.
#
#   hack/cluster.sh up [N]               start clusters c1..cN (default 3)
#   hack/cluster.sh down                 stop everything and remove the test bed dir
#   hack/cluster.sh status               list clusters and whether they answer
#   hack/cluster.sh stop-apiserver NAME  stop one cluster's apiserver (etcd stays)
#   hack/cluster.sh start-apiserver NAME start it again on the same port
#   hack/cluster.sh kubectl NAME ARGS…   kubectl against cluster NAME
#
# The test bed lives in $PLUMB_TESTBED (default /tmp/plumb-testbed):
#   clusters/<name>/{kubeconfig,ca.crt,ca.key,audit.log,env,…}
# Ports are found free at start, never hard-coded.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
testbed=${PLUMB_TESTBED:-/tmp/plumb-testbed}

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

port_in_use() {
	local p=$1
	ss -Htln "sport = :$p" 2>/dev/null | grep -q . && return 0
	grep -qx "$p" "$testbed/.ports" 2>/dev/null
}

free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		if ! port_in_use "$p"; then
			echo "$p" >>"$testbed/.ports"
			echo "$p"
			return 0
		fi
	done
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
			tail -20 "$d/apiserver.log" >&2
			die "$(basename "$d"): kube-apiserver exited"
		fi
		sleep 0.3
	done
	tail -20 "$d/apiserver.log" >&2
	die "$(basename "$d"): not ready after ${2:-90}s"
}

cmd_up() {
	local n=${1:-3} bin
	[[ -e $testbed/clusters ]] && die "test bed already up in $testbed (run: hack/cluster.sh down)"
	bin=$(bash "$here/build-k8s.sh")
	mkdir -p "$testbed/clusters"
	ln -sfn "$bin" "$testbed/bin"
	local start=$SECONDS
	for i in $(seq 1 "$n"); do
		local name="c$i" d="$testbed/clusters/c$i"
		mkdir -p "$d/certs"
		{
			echo "NAME=$name"
			echo "ETCD_PORT=$(free_port)"
			echo "ETCD_PEER_PORT=$(free_port)"
			echo "APISERVER_PORT=$(free_port)"
		} >"$d/env"
		# shellcheck disable=SC1091
		source "$d/env"
		{
			echo "APISERVER_URL=https://127.0.0.1:$APISERVER_PORT"
			echo "KUBECONFIG=$d/kubeconfig"
			echo "AUDIT_LOG=$d/audit.log"
		} >>"$d/env"
		make_certs "$d" "$name" &
	done
	wait
	for i in $(seq 1 "$n"); do
		local d="$testbed/clusters/c$i"
		write_scripts "$d" "c$i" "$bin"
		write_kubeconfig "$d" admin "$d/kubeconfig"
		start_bg "$d/etcd.pid" "$d/run-etcd.sh"
	done
	for i in $(seq 1 "$n"); do
		start_bg "$testbed/clusters/c$i/apiserver.pid" "$testbed/clusters/c$i/run-apiserver.sh"
	done
	for i in $(seq 1 "$n"); do
		wait_ready "$testbed/clusters/c$i" 120
	done
	log "$n cluster(s) ready in $((SECONDS - start))s in $testbed ($("$bin/kubectl" --kubeconfig "$testbed/clusters/c1/kubeconfig" version -o json 2>/dev/null | jq -r .serverVersion.gitVersion))"
}

cmd_down() {
	[[ -d $testbed ]] || return 0
	for d in "$testbed"/clusters/*/; do
		[[ -d $d ]] || continue
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
	wait_ready "$d" 120 ;;
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
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
	exit 2 ;;
esac
