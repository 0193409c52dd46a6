#!/bin/sh
# build.sh ROOTFS OUTDIR VERSION
#
# Pack ROOTFS (from rootfs.sh) as a one-layer OCI image with Debian's umoci,
# then export it with skopeo:
#   OUTDIR/oci                               an OCI image layout, tag VERSION
#   OUTDIR/pipewarden-VERSION.docker.tar     a docker-archive tagged
#                                            ghcr.io/pipewarden/pipewarden:VERSION,
#                                            for docker load, podman load and
#                                            kind load image-archive
# No Docker engine and no registry.  The layer's files are owned by root
# (umoci repacks what the bundle holds); the image runs as 65532.
set -eu
rootfs=${1:?usage: build.sh ROOTFS OUTDIR VERSION}
out=${2:?usage: build.sh ROOTFS OUTDIR VERSION}
version=${3:?usage: build.sh ROOTFS OUTDIR VERSION}
ref=ghcr.io/pipewarden/pipewarden:$version
# A fixed time keeps the image's digest the same for the same files.
created=${SOURCE_DATE_EPOCH:+$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)}
created=${created:-1970-01-01T00:00:00Z}

rm -rf "$out/oci" "$out/bundle" "$out/pipewarden-$version.docker.tar"
mkdir -p "$out"
umoci init --layout "$out/oci"
umoci new --image "$out/oci:$version"
umoci unpack --image "$out/oci:$version" "$out/bundle"
rmdir "$out/bundle/rootfs"
cp -a "$rootfs" "$out/bundle/rootfs"
umoci repack --image "$out/oci:$version" --history.created "$created" \
    --history.created_by "image/rootfs.sh: the binaries, their libraries, CA certificates, user 65532" \
    "$out/bundle"
umoci config --no-history --image "$out/oci:$version" --created "$created" \
    --architecture amd64 --os linux \
    --config.user 65532:65532 --config.workingdir / \
    --config.entrypoint /usr/local/bin/pipewarden-webhook \
    --config.env PATH=/usr/local/bin:/usr/bin \
    --config.label org.opencontainers.image.title=pipewarden \
    --config.label org.opencontainers.image.version="$version" \
    --config.label org.opencontainers.image.description="pipewarden-webhook and pipewarden-janitor"
umoci gc --layout "$out/oci"
rm -rf "$out/bundle"
skopeo copy --quiet "oci:$out/oci:$version" "docker-archive:$out/pipewarden-$version.docker.tar:$ref"
echo "image: $ref"
echo "  OCI layout      $out/oci (tag $version)"
echo "  docker-archive  $out/pipewarden-$version.docker.tar ($(du -k "$out/pipewarden-$version.docker.tar" | cut -f1) KiB)"
