#!/usr/bin/env bash
# The trust boundary for kubeconfigs a tenant writes (issue 13, section 1),
# tried as the tenant would: Secrets in a namespace plumbd watches whose
# kubeconfig asks plumbd to run a command (a marker file shows whether it
# ran), to read its own service-account token and send it to a plain-http
# listener on loopback (which records every byte it receives), to read a
# file path, or to skip TLS verification. Each is refused with a Cluster
# Ready=False reason InsecureKubeconfig naming the field; plumbctl diff
# refuses the same. Then plumbd runs with --allow-insecure-targets and
# --allow-exec-plugins, and only what those name starts working.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/tests/lib.sh"
source "$root/e2e/lib.sh"

# shellcheck disable=SC1091
source "$PLUMB_TESTBED/clusters/c2/env"
C2=$PLUMB_TESTBED/clusters/c2
C2_SERVER=https://127.0.0.1:$APISERVER_PORT
CA_DATA=$(base64 -w0 <"$C2/ca.crt")
CERT_DATA=$(base64 -w0 <"$C2/admin.crt")
KEY_DATA=$(base64 -w0 <"$C2/admin.key")
SECRET_TOKEN=plumb-sa-token-$RANDOM$RANDOM    # what plumbd must never send
CONTROL_TOKEN=plumb-control-token-$RANDOM$RANDOM

# A listener on loopback that records every connection and byte it gets.
LISTEN_LOG=$WORK/listener.log
: >"$LISTEN_LOG"
python3 - "$WORK/listener.port" "$LISTEN_LOG" <<'EOF' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(64)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
while True:
    c, _ = s.accept()
    with open(sys.argv[2], "ab") as f:
        f.write(b"\n--connection--\n")
    c.settimeout(2)
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            with open(sys.argv[2], "ab") as f:
                f.write(d)
    except Exception:
        pass
    c.close()
EOF
e2e_pids+=($!)
wait_for 10 test -s "$WORK/listener.port" || exit 1
LPORT=$(cat "$WORK/listener.port")

# The token file a tenant would point tokenFile at (plumbd's own SA token
# in a pod: /var/run/secrets/kubernetes.io/serviceaccount/token).
printf '%s\n' "$SECRET_TOKEN" >"$WORK/sa-token"

# An exec plugin the operator may allow by name, in plumbd's PATH, and a
# copy at another path a kubeconfig might name directly.
mkdir -p "$WORK/bin" "$WORK/abs"
cat >"$WORK/bin/plumb-e2e-plugin" <<EOF
#!/bin/sh
touch "$WORK/plugin-ran"
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"clientCertificateData":%s,"clientKeyData":%s}}\n' \
	"\$(jq -Rs . <"$C2/admin.crt")" "\$(jq -Rs . <"$C2/admin.key")"
EOF
sed "s|$WORK/plugin-ran|$WORK/abs-ran|" "$WORK/bin/plumb-e2e-plugin" >"$WORK/abs/plumb-e2e-plugin"
chmod +x "$WORK/bin/plumb-e2e-plugin" "$WORK/abs/plumb-e2e-plugin"

# tenant_cluster NAME CLUSTER-LINES USER-LINES: a kubeconfig Secret and a
# Cluster that uses it (lines are YAML, indented under cluster: / user:).
tenant_cluster() {
	local name=$1
	cat >"$WORK/kc-$name" <<-EOF
		apiVersion: v1
		kind: Config
		current-context: t
		clusters:
		- name: c
		  cluster:
		$2
		users:
		- name: u
		  user:
		$3
		contexts:
		- name: t
		  context: {cluster: c, user: u}
	EOF
	kc c1 -n "$NS" create secret generic "$name" --from-file=kubeconfig="$WORK/kc-$name" >/dev/null
	kc c1 -n "$NS" apply -f - >/dev/null <<-EOF
		apiVersion: plumb.dev/v1alpha1
		kind: Cluster
		metadata: {name: $name, labels: {tenant: evil}}
		spec: {kubeConfigSecretRef: {name: $name}}
	EOF
}

ready() { # CLUSTER: "<status> <reason> <message>" of its Ready condition
	kc c1 -n "$NS" get clusters.plumb.dev "$1" -o json |
		jq -r '.status.conditions[]? | select(.type == "Ready") | "\(.status) \(.reason) \(.message)"'
}
ready_is() { # CLUSTER STATUS REASON [MESSAGE-SUBSTRING]
	local r
	r=$(ready "$1")
	[[ $r == "$2 $3"* && $r == *"${4:-}"* ]]
}
show_ready() { echo "$1: $(ready "$1")"; }

tenant_cluster exec-attack "    server: $C2_SERVER
    certificate-authority-data: $CA_DATA" "    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: sh
      args: [-c, 'touch $WORK/pwned-exec; echo {}']"
tenant_cluster token-attack "    server: http://127.0.0.1:$LPORT" "    tokenFile: $WORK/sa-token"
tenant_cluster ca-path "    server: $C2_SERVER
    certificate-authority: /etc/ssl/certs/ca-certificates.crt" "    client-certificate-data: $CERT_DATA
    client-key-data: $KEY_DATA"
tenant_cluster insecure "    server: $C2_SERVER
    insecure-skip-tls-verify: true" "    client-certificate-data: $CERT_DATA
    client-key-data: $KEY_DATA"
tenant_cluster http-control "    server: http://127.0.0.1:$LPORT" "    token: $CONTROL_TOKEN"
tenant_cluster exec-allowed "    server: $C2_SERVER
    certificate-authority-data: $CA_DATA" "    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: plumb-e2e-plugin"
tenant_cluster exec-abs "    server: $C2_SERVER
    certificate-authority-data: $CA_DATA" "    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: $WORK/abs/plumb-e2e-plugin"
tenant_cluster proxied "    server: $C2_SERVER
    certificate-authority-data: $CA_DATA
    proxy-url: http://127.0.0.1:$LPORT" "    client-certificate-data: $CERT_DATA
    client-key-data: $KEY_DATA"
# The control case: inline material only, to show plumbd reaches c2 at all.
tenant_cluster inline "    server: $C2_SERVER
    certificate-authority-data: $CA_DATA" "    client-certificate-data: $CERT_DATA
    client-key-data: $KEY_DATA"

new_repo app
mkdir -p "$WORKTREE/deploy"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: trust, namespace: default}\ndata: {a: b}\n' >"$WORKTREE/deploy/cm.yaml"
commit "one object" >/dev/null
apply_gitsync app deploy 10m "targets: {clusterNames: [exec-attack]}"

# ---- 1. plumbd with its defaults: every attack refused, nothing run, nothing sent.
PATH="$WORK/bin:$PATH" start_plumbd strict

t_ok "1 inline kubeconfig is Ready" wait_for 30 ready_is inline True Connected
t_ok "1 exec refused, naming exec" wait_for 30 ready_is exec-attack False InsecureKubeconfig "users[0].user.exec: refused"
t_ok "1 tokenFile + http refused, naming both" wait_for 30 ready_is token-attack False InsecureKubeconfig "users[0].user.tokenFile: refused"
t_ok "1 ... and the http server" ready_is token-attack False InsecureKubeconfig "clusters[0].cluster.server: refused: http://"
t_ok "1 certificate-authority path refused" wait_for 30 ready_is ca-path False InsecureKubeconfig "clusters[0].cluster.certificate-authority: refused"
t_ok "1 insecure-skip-tls-verify refused" wait_for 30 ready_is insecure False InsecureKubeconfig "insecure-skip-tls-verify: refused"
t_ok "1 http:// refused" wait_for 30 ready_is http-control False InsecureKubeconfig "clusters[0].cluster.server: refused"
t_ok "1 exec plugin not allowed by name" wait_for 30 ready_is exec-allowed False InsecureKubeconfig "not in plumbd's --allow-exec-plugins"
t_ok "1 exec plugin by path refused" wait_for 30 ready_is exec-abs False InsecureKubeconfig "users[0].user.exec.command: refused"
t_ok "1 proxy-url refused" wait_for 30 ready_is proxied False InsecureKubeconfig "clusters[0].cluster.proxy-url: refused"
show_ready exec-attack
show_ready token-attack
# The GitSync targeting the exec Cluster is not synced there, and runs nothing either.
sleep 2
t_ok "1 exec marker absent" test ! -e "$WORK/pwned-exec"
t_ok "1 plugin marker absent" test ! -e "$WORK/plugin-ran"
t_ok "1 listener got no connection" bash -c "! grep -q -- --connection-- '$LISTEN_LOG'"
t_ok "1 the token never left" bash -c "! grep -q '$SECRET_TOKEN' '$LISTEN_LOG'"
t_ok "1 no secret in plumbd's log" bash -c "! grep -q '$SECRET_TOKEN' '$WORK/plumbd-strict.log'"

# plumbctl diff reads the same Secret on the admin's machine: refused too.
pc() { "$BUILD/plumbctl" "$@" --kubeconfig "$PLUMB_TESTBED/clusters/c1/kubeconfig" -n "$NS" --cache-dir "$WORK/pc-cache"; }
out=$(pc diff --gitsync app --cluster exec-attack 2>&1)
rc=$?
t_eq "1 plumbctl diff exit code 3" 3 "$rc"
t_ok "1 plumbctl diff names exec" grep -q "users\[0\].user.exec: refused" <<<"$out"
echo "$out" | head -3
out=$(pc diff --gitsync app --cluster token-attack 2>&1)
t_eq "1 plumbctl diff tokenFile exit 3" 3 "$?"
t_ok "1 plumbctl diff names tokenFile" grep -q "users\[0\].user.tokenFile: refused" <<<"$out"
out=$(PATH="$WORK/bin:$PATH" pc diff --gitsync app --cluster exec-abs --allow-exec-plugins plumb-e2e-plugin 2>&1)
t_eq "1 plumbctl diff exec by path exit 3" 3 "$?"
t_ok "1 plumbctl diff names exec.command" grep -q "users\[0\].user.exec.command: refused" <<<"$out"
t_ok "1 plumbctl ran nothing" test ! -e "$WORK/pwned-exec" -a ! -e "$WORK/abs-ran"
t_ok "1 plumbctl sent nothing" bash -c "! grep -q -- --connection-- '$LISTEN_LOG'"

# ---- 2. The operator loosens: insecure targets, one exec plugin by name.
kill "$PLUMBD_PID"
wait "$PLUMBD_PID" 2>/dev/null
PATH="$WORK/bin:$PATH" start_plumbd loose --allow-insecure-targets --allow-exec-plugins=plumb-e2e-plugin --allow-target-proxies

t_ok "2 insecure-skip-tls-verify accepted" wait_for 30 ready_is insecure True Connected
t_ok "2 allowed exec plugin from PATH works" wait_for 30 ready_is exec-allowed True Connected
t_ok "2 the plugin ran" test -e "$WORK/plugin-ran"
t_ok "2 http:// is used (control: the listener sees it)" wait_for 30 grep -q "$CONTROL_TOKEN" "$LISTEN_LOG"
t_ok "2 proxy-url is used (the listener gets the CONNECT)" wait_for 30 grep -q "CONNECT 127.0.0.1:$APISERVER_PORT" "$LISTEN_LOG"
t_ok "2 exec by path still refused" wait_for 30 ready_is exec-abs False InsecureKubeconfig "users[0].user.exec.command: refused"
t_ok "2 other commands still refused" ready_is exec-attack False InsecureKubeconfig "users[0].user.exec: refused"
t_ok "2 tokenFile still refused" ready_is token-attack False InsecureKubeconfig "users[0].user.tokenFile: refused"
show_ready exec-abs
sleep 2
t_ok "2 exec marker absent" test ! -e "$WORK/pwned-exec"
t_ok "2 path plugin never ran" test ! -e "$WORK/abs-ran"
t_ok "2 the token never left" bash -c "! grep -q '$SECRET_TOKEN' '$LISTEN_LOG'"
# plumbctl with the same flags uses the allowed plugin, from its own PATH.
rm -f "$WORK/plugin-ran"
out=$(PATH="$WORK/bin:$PATH" pc diff --gitsync app --cluster exec-allowed --allow-exec-plugins plumb-e2e-plugin 2>&1)
rc=$?
t_ok "2 plumbctl diff with the allowed plugin reaches the cluster (exit 0/1)" test "$rc" -le 1
t_ok "2 plumbctl ran the allowed plugin" test -e "$WORK/plugin-ran"

t_done
