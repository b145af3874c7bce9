#!/usr/bin/env bash
# Installs the Debian packages that building and testing plumb need, only when
# one is missing. Idempotent and silent when everything is present.
set -euo pipefail

packages=(
	# build
	gcc make pkg-config clang libclang-rt-14-dev llvm
	libcurl4-openssl-dev libssl-dev libcjson-dev libyaml-dev libgit2-dev
	libmicrohttpd-dev check
	# test bed: certificates, git servers, tools the tests drive
	openssl ca-certificates git curl jq procps psmisc iproute2 util-linux
	lighttpd lighttpd-mod-openssl openssh-server openssh-client
	# benchmarks and charts
	gnuplot-nox hyperfine
	# test scripts use python3 (and PyYAML) for small JSON/YAML checks
	python3 python3-yaml
)

missing=()
for p in "${packages[@]}"; do
	[[ $p == \#* ]] && continue
	if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
		missing+=("$p")
	fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
[[ $(id -u) -ne 0 ]] && sudo=sudo
export DEBIAN_FRONTEND=noninteractive
# Servers are started by the tests themselves: keep package scripts from
# launching them as system services.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
	printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
	$sudo chmod +x /usr/sbin/policy-rc.d
	remove_policy=1
fi
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[[ ${remove_policy:-0} -eq 1 ]] && $sudo rm -f /usr/sbin/policy-rc.d
exit 0
