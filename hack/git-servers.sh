#!/usr/bin/env bash
# Real Git servers on loopback for plumb's source tests.
#
#   hack/git-servers.sh up DIR     start them; writes DIR/env (shell variables)
#   hack/git-servers.sh down DIR   stop them and remove DIR
#
# What runs:
#   - lighttpd over HTTPS (a CA and a server certificate made here with
#     openssl) in front of `git http-backend` (CGI):
#       /basic/<repo>.git   basic auth (user/password below, mod_auth)
#       /bearer/<repo>.git  a small CGI wrapper that wants
#                           "Authorization: Bearer <token>" before exec'ing
#                           git http-backend (mod_auth does no bearer)
#       /open/<repo>.git    no auth
#   - sshd on its own high port, key-only auth, its own ed25519 host key,
#     AuthorizedKeysFile inside DIR; git-upload-pack via the login shell.
# Repositories live in DIR/repos; tests create them there with git.
# Ports are found free at start time, never hard-coded.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [[ -z "$cmd" || -z "$dir" ]]; then
	echo "usage: $0 up|down DIR" >&2
	exit 2
fi

log() { echo "git-servers: $*" >&2; }

port_in_use() {
	ss -Htan "( sport = :$1 )" 2>/dev/null | grep -q . && return 0
	return 1
}

free_port() {
	local p i
	for i in $(seq 1 200); do
		# below the kernel's ephemeral range (32768+): no outgoing
		# connection can be holding it
		p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12700 ))
		if ! port_in_use "$p"; then
			echo "$p"
			return 0
		fi
	done
	log "no free port found"
	return 1
}

wait_listen() {
	local port=$1 i
	for i in $(seq 1 100); do
		port_in_use "$port" && return 0
		sleep 0.05
	done
	return 1
}

stop_pidfile() {
	local f=$1 pid i
	[[ -f "$f" ]] || return 0
	pid=$(cat "$f" 2>/dev/null || true)
	if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for i in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

make_tls() {
	local t=$dir/tls
	mkdir -p "$t"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=plumb test CA" \
		-keyout "$t/ca.key" -out "$t/ca.crt" 2>/dev/null
	# A second, unrelated CA: the "unknown CA" case.
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=plumb other CA" \
		-keyout "$t/other-ca.key" -out "$t/other-ca.crt" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
		-keyout "$t/server.key" -out "$t/server.csr" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$t/ext.cnf"
	openssl x509 -req -in "$t/server.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" \
		-CAcreateserial -days 2 -extfile "$t/ext.cnf" -out "$t/server.crt" 2>/dev/null
	chmod 600 "$t"/*.key
}

start_lighttpd() {
	local port=$1 backend
	backend=$(git --exec-path)/git-http-backend
	mkdir -p "$dir/www" "$dir/cgi"
	printf '%s:%s\n' "$BASIC_USER" "$BASIC_PASSWORD" >"$dir/users"
	chmod 600 "$dir/users"
	cat >"$dir/cgi/bearer" <<EOF
#!/bin/sh
# Lets a request through only with the expected bearer token.
if [ "\${HTTP_AUTHORIZATION:-}" != "Bearer $BEARER_TOKEN" ]; then
	printf 'Status: 401 Unauthorized\r\nWWW-Authenticate: Basic realm="git"\r\nContent-Type: text/plain\r\n\r\nbad token\n'
	exit 0
fi
exec "$backend"
EOF
	chmod 700 "$dir/cgi/bearer"
	cat >"$dir/lighttpd.conf" <<EOF
server.modules = ( "mod_openssl", "mod_auth", "mod_authn_file", "mod_cgi", "mod_setenv", "mod_alias" )
server.document-root = "$dir/www"
server.bind = "127.0.0.1"
server.port = $port
server.pid-file = "$dir/lighttpd.pid"
server.errorlog = "$dir/lighttpd.err"
ssl.engine = "enable"
ssl.pemfile = "$dir/tls/server.crt"
ssl.privkey = "$dir/tls/server.key"
auth.backend = "plain"
auth.backend.plain.userfile = "$dir/users"
setenv.set-environment = ( "GIT_PROJECT_ROOT" => "$dir/repos", "GIT_HTTP_EXPORT_ALL" => "1" )
\$HTTP["url"] =~ "^/basic/" {
	alias.url = ( "/basic/" => "$backend/" )
	cgi.assign = ( "" => "" )
	auth.require = ( "" => ( "method" => "basic", "realm" => "git", "require" => "valid-user" ) )
}
\$HTTP["url"] =~ "^/bearer/" {
	alias.url = ( "/bearer/" => "$dir/cgi/bearer/" )
	cgi.assign = ( "" => "" )
}
\$HTTP["url"] =~ "^/open/" {
	alias.url = ( "/open/" => "$backend/" )
	cgi.assign = ( "" => "" )
}
EOF
	lighttpd -t -f "$dir/lighttpd.conf" >/dev/null
	lighttpd -f "$dir/lighttpd.conf"
}

start_sshd() {
	local port=$1 s=$dir/ssh
	mkdir -p "$s" /run/sshd
	chmod 700 "$s"
	ssh-keygen -q -t ed25519 -N '' -C plumb-test-host -f "$s/host_ed25519" >/dev/null
	# Another host key of the same type: the "changed host key" case.
	ssh-keygen -q -t ed25519 -N '' -C plumb-test-impostor -f "$s/impostor_ed25519" >/dev/null
	ssh-keygen -q -t ed25519 -N '' -C plumb-test-client -f "$s/client_ed25519" >/dev/null
	ssh-keygen -q -t ed25519 -N "$SSH_KEY_PASSPHRASE" -C plumb-test-client-enc -f "$s/client_enc_ed25519" >/dev/null
	ssh-keygen -q -t ecdsa -b 256 -m PEM -N "" -C plumb-test-client-ecdsa -f "$s/client_ecdsa" >/dev/null
	ssh-keygen -q -t ed25519 -N '' -C plumb-test-stranger -f "$s/wrong_ed25519" >/dev/null
	cat "$s/client_ed25519.pub" "$s/client_enc_ed25519.pub" "$s/client_ecdsa.pub" >"$s/authorized_keys"
	chmod 600 "$s/authorized_keys" "$s"/*_ed25519 "$s/client_ecdsa"
	printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$s/host_ed25519.pub")" >"$s/known_hosts"
	printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$s/impostor_ed25519.pub")" >"$s/known_hosts_changed"
	printf '[127.0.0.1]:%s %s\n' "$(( port == 65535 ? 1 : port + 1 ))" \
		"$(cut -d' ' -f1,2 "$s/host_ed25519.pub")" >"$s/known_hosts_other"
	cat >"$s/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $s/host_ed25519
PidFile $s/sshd.pid
AuthorizedKeysFile $s/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
PrintMotd no
LogLevel VERBOSE
EOF
	"$(command -v sshd)" -f "$s/sshd_config" -E "$s/sshd.log"
}

up() {
	if [[ -e "$dir/env" ]]; then
		log "$dir/env exists: already up? run down first"
		exit 1
	fi
	mkdir -p "$dir/repos"
	dir=$(cd "$dir" && pwd)
	BASIC_USER=plumb
	BASIC_PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
	BEARER_TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
	SSH_KEY_PASSPHRASE=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
	make_tls
	local https_port ssh_port try
	for try in 1 2 3 4 5; do
		https_port=$(free_port)
		start_lighttpd "$https_port" && wait_listen "$https_port" && break
		stop_pidfile "$dir/lighttpd.pid"
		https_port=
	done
	[[ -n "$https_port" ]] || { log "lighttpd did not start"; cat "$dir/lighttpd.err" >&2 || true; exit 1; }
	for try in 1 2 3 4 5; do
		ssh_port=$(free_port)
		[[ "$ssh_port" == "$https_port" ]] && continue
		rm -rf "$dir/ssh"
		start_sshd "$ssh_port" && wait_listen "$ssh_port" && break
		stop_pidfile "$dir/ssh/sshd.pid"
		ssh_port=
	done
	[[ -n "$ssh_port" ]] || { log "sshd did not start"; cat "$dir/ssh/sshd.log" >&2 || true; exit 1; }
	local user
	user=$(id -un)
	cat >"$dir/env" <<EOF
GIT_SERVERS_DIR=$dir
GIT_REPOS=$dir/repos
HTTPS_PORT=$https_port
SSH_PORT=$ssh_port
HTTPS_BASIC_URL=https://127.0.0.1:$https_port/basic
HTTPS_BEARER_URL=https://127.0.0.1:$https_port/bearer
HTTPS_OPEN_URL=https://127.0.0.1:$https_port/open
SSH_URL=ssh://$user@127.0.0.1:$ssh_port$dir/repos
BASIC_USER=$BASIC_USER
BASIC_PASSWORD=$BASIC_PASSWORD
BEARER_TOKEN=$BEARER_TOKEN
CA_FILE=$dir/tls/ca.crt
OTHER_CA_FILE=$dir/tls/other-ca.crt
SSH_KEY=$dir/ssh/client_ed25519
SSH_KEY_ENC=$dir/ssh/client_enc_ed25519
SSH_KEY_PASSPHRASE=$SSH_KEY_PASSPHRASE
SSH_KEY_ECDSA=$dir/ssh/client_ecdsa
SSH_WRONG_KEY=$dir/ssh/wrong_ed25519
KNOWN_HOSTS=$dir/ssh/known_hosts
KNOWN_HOSTS_CHANGED=$dir/ssh/known_hosts_changed
KNOWN_HOSTS_OTHER=$dir/ssh/known_hosts_other
KNOWN_HOSTS_LINE='$(cat "$dir/ssh/known_hosts")'
EOF
	log "up: https on $https_port, ssh on $ssh_port, env in $dir/env"
}

down() {
	[[ -d "$dir" ]] || return 0
	stop_pidfile "$dir/lighttpd.pid"
	stop_pidfile "$dir/ssh/sshd.pid"
	rm -rf "$dir"
	log "down: $dir removed"
}

case "$cmd" in
up) up ;;
down) down ;;
*) echo "usage: $0 up|down DIR" >&2; exit 2 ;;
esac
