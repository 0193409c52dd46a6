# pipewarden: both binaries in one image.  Untested here (no Docker engine on
# the development machines); kept minimal so it is plainly right.
FROM debian:12 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc make libc6-dev \
      libmicrohttpd-dev libgnutls28-dev libcjson-dev libcurl4-openssl-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# NODEPS=1: the packages are installed above; do not install test tools.
RUN make NODEPS=1 bin/pipewarden-webhook bin/pipewarden-janitor

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
      libmicrohttpd12 libgnutls30 libcjson1 libcurl4 libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/bin/pipewarden-webhook /src/bin/pipewarden-janitor /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/pipewarden-webhook"]
