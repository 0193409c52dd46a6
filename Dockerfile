# pipewarden: both binaries in one image, for users who build with Docker.
# It makes the same root filesystem as `make image` (image/rootfs.sh: the two
# binaries, the shared libraries they load, CA certificates, user 65532, no
# shell).  `make image` is what the tests build and run; this file is not
# exercised here (no Docker engine on the development machines).
FROM debian:12 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc make libc6-dev binutils ca-certificates \
      libmicrohttpd-dev libgnutls28-dev libcjson-dev libcurl4-openssl-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# NODEPS=1: the packages are installed above; do not install test tools.
RUN make NODEPS=1 bin/pipewarden-webhook bin/pipewarden-janitor \
 && sh image/rootfs.sh bin /rootfs

FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/pipewarden-webhook"]
