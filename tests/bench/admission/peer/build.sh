#!/bin/sh
# Build the benchmark's peer, the Azure workload-identity webhook (cmd/webhook)
# at the release go.mod pins, into a cache outside the tree, keyed by version:
#
#   ${PIPEWARDEN_CACHE:-~/.cache/pipewarden}/azure-wi-webhook-<version>/webhook
#
# Built once, under the control plane's build lock; prints a line with the
# time it took.  Its logging module is ./mlog (see go.mod).
# Usage: build.sh [--print-path]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${PIPEWARDEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pipewarden}
version=$(awk '$1 == "require" && $2 == "github.com/Azure/azure-workload-identity" { print $3; exit }' "$here/go.mod")
[ -n "$version" ] || { echo "build.sh: cannot read the pinned version from $here/go.mod" >&2; exit 2; }
dir=$cache/azure-wi-webhook-$version

case "${1:-}" in
--print-path) echo "$dir/webhook"; exit 0;;
"") ;;
*) echo "usage: build.sh [--print-path]" >&2; exit 2;;
esac
[ -x "$dir/webhook" ] && exit 0

command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null 2>&1 || {
	echo "build.sh: no Go toolchain (go) on PATH or in /usr/local/go/bin; it is needed to build the benchmark's peer webhook" >&2
	exit 2; }
mkdir -p "$dir"
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
	echo "peer webhook: another build holds $cache/.build.lock; waiting"
	flock 9
fi
[ -x "$dir/webhook" ] && exit 0
start=$(date +%s)
echo "peer webhook: building the Azure workload-identity webhook $version into $dir (cold: a few minutes) ..."
(cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" \
	-o "$dir/.webhook.tmp" github.com/Azure/azure-workload-identity/cmd/webhook)
mv "$dir/.webhook.tmp" "$dir/webhook"
echo "peer webhook: built in $(( $(date +%s) - start ))s"
