# plumb: plumbd (the operator), plumbctl, kustomize and helm in one image with
# no shell and no package manager.
#
#   make image                       (buildah, no daemon; hack/build-image.sh)
#   docker build -t plumb:0.1.0-dev .
#
# Stages:
#   tools   kustomize and helm built with Go from the modules pinned in
#           hack/kustomize/go.mod and hack/helm/go.mod, by the same scripts the
#           tests use (static, CGO_ENABLED=0)
#   build   plumbd and plumbctl compiled on Debian 12 with the libraries the
#           tests use (libgit2 1.5.1 with mbedTLS and libssh2)
#   rootfs  debian:12-slim with the runtime packages installed; their files
#           (dpkg -L) copied into /rootfs by hack/image-rootfs.sh, without
#           what only installs packages (dpkg, apt, debconf, perl, a shell)
#   final   FROM scratch: /rootfs, the four binaries in /usr/local/bin, UID 65532
# docs/install.md lists the final image's contents and measured size;
# tests/integration/test_packaging.sh checks this file without an image
# build, tests/image/test_image.sh runs plumbd from the built image.

FROM golang:1.26.8-bookworm AS tools
# Go as the image has it (GOTOOLCHAIN=local: never a downloaded toolchain);
# the scripts set CGO_ENABLED=0 and -mod=mod. --build-arg GOPROXY=… for a
# module proxy other than Go's default.
ARG GOPROXY=https://proxy.golang.org,direct
ENV GOTOOLCHAIN=local
WORKDIR /src
COPY hack/build-kustomize.sh hack/
COPY hack/kustomize/ hack/kustomize/
# The module and build caches are cache mounts: kept between builds, never
# in a layer.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    mkdir -p /out && cp "$(PLUMB_CACHE=/cache bash hack/build-kustomize.sh)/kustomize" /out/ && rm -rf /cache
COPY hack/build-helm.sh hack/
COPY hack/helm/ hack/helm/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cp "$(PLUMB_CACHE=/cache bash hack/build-helm.sh)/helm" /out/ && rm -rf /cache

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

FROM debian:12-slim AS rootfs
# The Debian packages whose shared libraries plumbd and plumbctl link (their
# own dependencies come along), and the CA bundle for HTTPS to Git hosts.
ARG RUNTIME_PACKAGES="ca-certificates libcurl4 libssl3 libcjson1 libyaml-0-2 libgit2-1.5 libmicrohttpd12"
# What ca-certificates needs only to build its bundle when it is installed
# (the openssl CLI, debconf and, through it, perl and dpkg).
ARG RUNTIME_EXCLUDE="openssl debconf"
COPY hack/image-rootfs.sh /
RUN apt-get update \
 && apt-get install -y --no-install-recommends $RUNTIME_PACKAGES \
 && bash /image-rootfs.sh --exclude "$RUNTIME_EXCLUDE" /rootfs $RUNTIME_PACKAGES

FROM scratch
COPY --from=rootfs /rootfs/ /
COPY --from=build /out/plumbd /out/plumbctl /usr/local/bin/
COPY --from=tools /out/kustomize /out/helm /usr/local/bin/
# plumbd finds kustomize and helm in PATH (--kustomize-bin, --helm-bin);
# renders work in $TMPDIR, else /tmp (an emptyDir in the chart's pod).
ENV PATH=/usr/local/bin:/usr/bin
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
