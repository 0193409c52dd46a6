#!/bin/sh
# Build the real-node suite's KEDA operator (cmd/operator) at the release
# go.mod pins, into a cache outside the tree, keyed by version:
#
#   ${PIPEWARDEN_CACHE:-~/.cache/pipewarden}/keda-<version>/keda-operator
#   ${PIPEWARDEN_CACHE:-~/.cache/pipewarden}/keda-<version>/crd/   (its CRDs, from the module)
#
# Built once, under the control plane's build lock, with a progress line.
# Cold: about 1,000 CPU-seconds and 1.7 GB of modules.  Usage: build.sh [--print-dir]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${PIPEWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pipewarden}
version=$(awk '$1 == "require" && $2 == "github.com/kedacore/keda/v2" { print $3; exit }' "$here/go.mod")
[ -n "$version" ] || { echo "build.sh: cannot read the pinned KEDA version from $here/go.mod" >&2; exit 2; }
dir=$cache/keda-$version

case "${1:-}" in
--print-dir) echo "$dir"; exit 0;;
"") ;;
*) echo "usage: build.sh [--print-dir]" >&2; exit 2;;
esac
[ -x "$dir/keda-operator" ] && [ -d "$dir/crd" ] && exit 0

command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null 2>&1 || {
	echo "build.sh: no Go toolchain (go) on PATH or in /usr/local/go/bin; it is needed to build KEDA" >&2
	exit 2; }
mkdir -p "$dir"
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
	echo "KEDA: another build holds $cache/.build.lock; waiting"
	flock 9
fi
if [ ! -x "$dir/keda-operator" ]; then
	start=$(date +%s)
	echo "KEDA: building the operator $version into $dir (cold: about 10 minutes on 2 cores) ..."
	(cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" \
		-o "$dir/.keda-operator.tmp" github.com/kedacore/keda/v2/cmd/operator)
	mv "$dir/.keda-operator.tmp" "$dir/keda-operator"
	echo "KEDA: built in $(( $(date +%s) - start ))s"
fi
src=$(cd "$here" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' github.com/kedacore/keda/v2)
rm -rf "$dir/.crd.tmp"
cp -r "$src/config/crd/bases" "$dir/.crd.tmp"
chmod -R u+w "$dir/.crd.tmp"
rm -rf "$dir/crd"
mv "$dir/.crd.tmp" "$dir/crd"
