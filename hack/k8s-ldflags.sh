# Sourced by hack/build-k8s.sh and hack/build-workloads.sh: the version stamp
# every Kubernetes binary of the test bed is built with.
#
#   k8s_ldflags VERSION   prints the go build -ldflags for k8s.io/kubernetes VERSION (e.g. v1.36.3)
k8s_ldflags() {
	local version=$1 major minor date pkg flags="-s -w"
	major=${version#v}; major=${major%%.*}
	minor=${version#v*.}; minor=${minor%%.*}
	date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		flags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
		flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
	done
	printf '%s\n' "$flags"
}
