# syntax=docker/dockerfile:1

# pushupd as a container: a static binary on a distroless base, run as an
# unprivileged user. docker-compose.yml runs three behind HAProxy.
#
#   docker build -t pushupd .
#   docker run --rm -p 8080:8080 pushupd

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# CGO_ENABLED=0: statically linked, so the runtime image needs no libc.
# -trimpath -s -w: no build paths or symbol tables in the binary.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/pushupd ./cmd/pushupd \
    && mkdir -p /out/data

# distroless/static: CA certificates, time zones, and an /etc/passwd with
# the nonroot user (uid 65532); no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pushupd /usr/local/bin/pushupd
# /data is for -data-dir (PUSHUP_DATA_DIR=/data, or /data/* when replicas
# share one volume): owned by nonroot, so a named volume mounted there
# starts out writable. Without PUSHUP_DATA_DIR the cache is memory only.
COPY --from=build --chown=65532:65532 /out/data /data
VOLUME ["/data"]
USER nonroot:nonroot
# 8080: the HTTP API, for clients and for the other nodes (/internal/v1/).
# 7946: cluster membership (memberlist), TCP and UDP.
EXPOSE 8080 7946/tcp 7946/udp
ENV PUSHUP_LISTEN=:8080
# No shell and no curl here: pushupd probes itself. /healthz/ready is 503
# while a node joins its cluster (up to -join-timeout) and once it shuts
# down; the start period covers the join.
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/pushupd", "-healthcheck", "/healthz/ready"]
ENTRYPOINT ["/usr/local/bin/pushupd"]
