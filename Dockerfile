# plumb: plumbd (the operator) and plumbctl in one small image.
#
#   docker build -t plumb:0.1.0-dev .
#
# Stage 1 compiles them on Debian 12 with the same libraries the tests use
# (libgit2 1.5.1 with mbedTLS and libssh2); stage 2 is debian:12-slim with only
# the shared libraries they load and CA certificates, running as UID 65532.
# docs/install.md lists the final image's contents and expected size;
# tests/integration/test_packaging.sh checks this file without a Docker engine.

FROM debian:12 AS build
# The compiler, make, pkg-config and the -dev package of every library the
# Makefile's LIBS names.
ARG BUILD_PACKAGES="gcc libc6-dev make pkg-config libcurl4-openssl-dev libssl-dev libcjson-dev libyaml-dev libgit2-dev libmicrohttpd-dev"
RUN apt-get update \
 && apt-get install -y --no-install-recommends $BUILD_PACKAGES \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY pkg/ pkg/
COPY cmd/ cmd/
RUN make BUILD=/out -j"$(nproc)" /out/plumbd /out/plumbctl \
 && strip /out/plumbd /out/plumbctl

FROM debian:12-slim
# The Debian packages whose shared libraries plumbd and plumbctl link (their
# own dependencies come along), and the CA bundle for HTTPS to Git hosts.
ARG RUNTIME_PACKAGES="ca-certificates libcurl4 libssl3 libcjson1 libyaml-0-2 libgit2-1.5 libmicrohttpd12"
RUN apt-get update \
 && apt-get install -y --no-install-recommends $RUNTIME_PACKAGES \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/* /var/log/apt /var/log/dpkg.log \
 && echo 'plumb:x:65532:65532:plumb:/nonexistent:/usr/sbin/nologin' >>/etc/passwd \
 && echo 'plumb:x:65532:' >>/etc/group \
 && mkdir -p /var/cache/plumb && chown 65532:65532 /var/cache/plumb
COPY --from=build /out/plumbd /out/plumbctl /usr/local/bin/
# The Git mirror cache; the chart mounts an emptyDir here (the root
# filesystem is read-only in the pod).
VOLUME /var/cache/plumb
USER 65532:65532
EXPOSE 8080 8081
LABEL org.opencontainers.image.title="plumb" \
      org.opencontainers.image.description="Keeps Kubernetes clusters in step with Git" \
      org.opencontainers.image.version="0.1.0-dev"
ENTRYPOINT ["/usr/local/bin/plumbd"]
CMD ["--cache-dir=/var/cache/plumb"]
