# syntax=docker/dockerfile:1
# Hangar image: one static `hangar` binary for every role.
#
#   docker build -t ghcr.io/hangar-csi/hangar:0.1.0 --build-arg VERSION=0.1.0 .
#
# `make image` builds the same image without Docker (build/image: the
# binary at /usr/local/bin/hangar, user 65532, nothing else).
#
# Roles and privileges (the Helm chart sets them):
#   controller  non-root (uid 65532), no capabilities
#   server      root with CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID:
#               it stores files for every uid and reopens them by handle
#               (open_by_handle_at)
#   node        root, privileged: mounts NFS into the kubelet's directory
#               with mount(2) itself (no mount.nfs needed)
# The image's default user is non-root; the chart runs server and node as root.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY cmd ./cmd
COPY pkg ./pkg
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/hangar ./cmd/hangar \
 && /out/hangar version

# Every role needs nothing but the static binary.
FROM scratch
COPY --from=build /out/hangar /usr/local/bin/hangar
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/hangar"]
