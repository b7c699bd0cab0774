# syntax=docker/dockerfile:1
# Tutela's container image for people who have Docker (or Podman/BuildKit). CI does NOT build
# this file: there is no container engine in CI, so CI builds the equivalent image without a
# daemon (internal/tools/image: scratch base, same user 65532, same layout) and checks it.
# Build and run it yourself with:
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) -t tutela:dev .
#   docker run --rm tutela:dev version
#
# The binary is static (CGO_ENABLED=0), so PKCS#11 HSM support (cgo) is not in it; for an HSM
# KEK, build with CGO_ENABLED=1 on a glibc base (gcr.io/distroless/base-debian12:nonroot) and
# mount the HSM's PKCS#11 library. Cloud KMS and HashiCorp Vault KEKs work in this image.
ARG GO_VERSION=1.26

FROM docker.io/library/golang:${GO_VERSION}-bookworm AS build
ARG VERSION=dev
ARG SOURCE_DATE_EPOCH=0
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X tutela.Version=${VERSION}" -o /out/tutela ./cmd/tutela \
 && install -d -o 65532 -g 65532 -m 0700 /out/data

# distroless static: CA certificates, /etc/passwd with nonroot (65532), no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="tutela" \
      org.opencontainers.image.source="https://github.com/tutela/tutela" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/tutela /usr/local/bin/tutela
COPY --from=build --chown=65532:65532 /out/data /data
ENV TUTELA_DATA_DIR=/data \
    TUTELA_HTTP_ADDR=:8080
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s CMD ["/usr/local/bin/tutela", "health"]
ENTRYPOINT ["/usr/local/bin/tutela"]
CMD ["serve"]
