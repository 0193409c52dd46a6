#!/bin/sh
# Build the pinned test control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, and the kubelet of the
# real-node suite) and Helm from their Go
# modules into a cache outside the tree, keyed by version:
#
#   ${PIPEWARDEN_CACHE:-~/.cache/pipewarden}/k8s-<version>/{etcd,kube-apiserver,...}
#   ${PIPEWARDEN_CACHE:-~/.cache/pipewarden}/helm-<version>/helm
#
# Built once, under a lock (two make runs at once wait for each other); a
# binary already in the cache is not built again.  Prints one line per binary
# with the time it took.  Usage: build.sh [--print-dir k8s|helm]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${PIPEWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pipewarden}

# The versions are the ones the build modules pin.
modversion() { awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$2"; }
k8s_version=$(modversion k8s.io/kubernetes "$here/go.mod")
etcd_version=$(modversion go.etcd.io/etcd/server/v3 "$here/go.mod")
helm_version=$(modversion helm.sh/helm/v4 "$here/helm/go.mod")
[ -n "$k8s_version" ] && [ -n "$etcd_version" ] && [ -n "$helm_version" ] || {
	echo "build.sh: cannot read the pinned versions from $here/go.mod and helm/go.mod" >&2; exit 2; }
k8s_dir=$cache/k8s-$k8s_version
helm_dir=$cache/helm-$helm_version

case "${1:-}" in
--print-dir)
	case "${2:-}" in k8s) echo "$k8s_dir";; helm) echo "$helm_dir";;
	*) echo "usage: build.sh [--print-dir k8s|helm]" >&2; exit 2;; esac
	exit 0;;
"") ;;
*) echo "usage: build.sh [--print-dir k8s|helm]" >&2; exit 2;;
esac

command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null 2>&1 || {
	echo "build.sh: no Go toolchain (go) on PATH or in /usr/local/go/bin; it is needed to build the test control plane" >&2
	exit 2; }
command -v flock >/dev/null 2>&1 || { echo "build.sh: flock (util-linux) is missing" >&2; exit 2; }

mkdir -p "$cache"
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
	echo "control plane: another build holds $cache/.build.lock; waiting"
	flock 9
fi

# Kubernetes stamps its version at link time (hack/lib/version.sh does the
# same), so `kubectl version` and /version report the release we pin.
minor=$(echo "$k8s_version" | cut -d. -f2)
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	stamp="$stamp -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
	stamp="$stamp -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# build_one DIR MODULE-DIR PACKAGE NAME [LDFLAGS]
build_one() {
	if [ -x "$1/$4" ]; then return 0; fi
	start=$(date +%s)
	printf 'control plane: building %s (%s) ...\n' "$4" "$3"
	(cd "$2" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
		-ldflags "-s -w ${5:-}" -o "$1/.$4.tmp" "$3")
	mv "$1/.$4.tmp" "$1/$4"
	printf 'control plane: built %s in %ss\n' "$4" "$(( $(date +%s) - start ))"
}

mkdir -p "$k8s_dir" "$helm_dir"
total_start=$(date +%s)
built_any=0
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet; do
	[ -x "$k8s_dir/$b" ] || built_any=1
done
[ -x "$helm_dir/helm" ] || built_any=1
[ $built_any = 0 ] || echo "control plane: Kubernetes $k8s_version, etcd $etcd_version, Helm $helm_version into $cache (cold: tens of minutes on 2 cores)"

build_one "$k8s_dir" "$here" go.etcd.io/etcd/server/v3 etcd
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet; do
	build_one "$k8s_dir" "$here" "k8s.io/kubernetes/cmd/$b" "$b" "$stamp"
done
build_one "$helm_dir" "$here/helm" helm.sh/helm/v4/cmd/helm helm \
	"-X helm.sh/helm/v4/internal/version.version=$helm_version"

[ $built_any = 0 ] || printf 'control plane: all built in %ss\n' "$(( $(date +%s) - total_start ))"
