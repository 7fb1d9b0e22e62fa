# syntax=docker/dockerfile:1

# Build stage: a static, trimmed binary.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Stamp the version, e.g. docker build --build-arg VERSION=$(git describe --tags) .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/sockudo . \
    && mkdir -p /out/data

# Run stage: no shell, no package manager, runs as uid 65532 (nonroot).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sockudo /sockudo
# A new named volume copies this directory's ownership, so nonroot can
# write the database into it.
COPY --from=build --chown=65532:65532 /out/data /data
ENV HOST=0.0.0.0 \
    PORT=6001 \
    SOCKUDO_DB_PATH=/data/sockudo.db
USER nonroot:nonroot
EXPOSE 6001
VOLUME /data
# The image has no curl or shell: the binary checks GET /up on $PORT itself.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 CMD ["/sockudo", "healthcheck"]
# docker stop sends SIGTERM; give "docker stop -t" more than
# SHUTDOWN_GRACE_PERIOD (10s by default) so sockets drain before SIGKILL.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/sockudo"]
CMD ["serve"]
