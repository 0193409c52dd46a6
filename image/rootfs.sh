#!/bin/sh
# rootfs.sh BINDIR OUT
#
# The image's root filesystem, from this Debian system's own files: the two
# binaries (debug info stripped), the shared libraries they load (the dynamic
# loader's closure, as ldd lists it), the CA certificates, and a non-root
# user 65532.  Each library's Debian package is recorded as distroless does
# (/var/lib/dpkg/status.d/<package>, with its copyright in
# /usr/share/doc/<package>/), so image scanners see what is inside.  The
# layout is Debian's merged /usr.  Used by `make image` and by the Dockerfile.
set -eu
bindir=${1:?usage: rootfs.sh BINDIR OUT}
out=${2:?usage: rootfs.sh BINDIR OUT}
bins="pipewarden-webhook pipewarden-janitor"

for b in $bins; do
	[ -x "$bindir/$b" ] || { echo "rootfs.sh: $bindir/$b is missing (run make)" >&2; exit 2; }
done
bindir=$(cd "$bindir" && pwd)
[ -f /etc/ssl/certs/ca-certificates.crt ] || {
	echo "rootfs.sh: /etc/ssl/certs/ca-certificates.crt is missing (apt-get install ca-certificates)" >&2; exit 2; }

rm -rf "$out"
mkdir -p "$out"
cd "$out"
mkdir -p usr/bin usr/lib usr/lib64 usr/local/bin usr/share/doc etc/ssl/certs \
    var/lib/dpkg/status.d dev proc sys home/nonroot
ln -s usr/bin bin
ln -s usr/lib lib
ln -s usr/lib64 lib64
install -d -m 1777 tmp
chown 65532:65532 home/nonroot

for b in $bins; do
	objcopy --strip-debug "$bindir/$b" "usr/local/bin/$b"
	chmod 0755 "usr/local/bin/$b"
done

# Every library a binary loads, at its path under /usr (merged /usr).
libs=$(for b in $bins; do ldd "$bindir/$b"; done |
	awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
pkgs=""
for l in $libs; do
	dest=usr${l#/usr}
	mkdir -p "$(dirname "$dest")"
	cp -L "$l" "$dest"
	real=$(readlink -f "$l")
	p=$(dpkg -S "$real" 2>/dev/null || dpkg -S "/usr$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null || true)
	p=${p%%:*}
	[ -n "$p" ] || { echo "rootfs.sh: no Debian package owns $real" >&2; exit 2; }
	pkgs="$pkgs $p"
done
pkgs="$(echo $pkgs ca-certificates | tr ' ' '\n' | sort -u)"
for p in $pkgs; do
	dpkg-query -s "$p" | grep -vE '^(Status|Conffiles|Depends|Pre-Depends|Recommends|Suggests|Breaks|Replaces|Provides|Conflicts):|^ ' \
	    > "var/lib/dpkg/status.d/$p"
	if [ -f "/usr/share/doc/$p/copyright" ]; then
		mkdir -p "usr/share/doc/$p"
		cp "/usr/share/doc/$p/copyright" "usr/share/doc/$p/copyright"
	fi
done

cp /etc/ssl/certs/ca-certificates.crt etc/ssl/certs/ca-certificates.crt
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > etc/passwd
printf 'root:x:0:\nnonroot:x:65532:\n' > etc/group
printf 'hosts: files dns\n' > etc/nsswitch.conf
echo "rootfs: $(echo "$pkgs" | wc -l) Debian packages, $(du -sk . | cut -f1) KiB in $out"
