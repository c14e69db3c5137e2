# kvop: the manager and the kvop CLI in one small, static, non-root image.
#   docker build -t kvop/manager:dev .
FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so that code changes do not re-download modules.
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY pkg/ pkg/
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/manager ./cmd/manager \
 && CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/kvop ./cmd/kvop \
 && mkdir -p /out/var/lib/kvop

# distroless/static: no shell, no package manager; uid 65532 ("nonroot").
FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/manager /manager
COPY --from=build /out/kvop /usr/local/bin/kvop
# Where boltdb KVEndpoints keep their files (mount a volume here).
COPY --from=build --chown=65532:65532 /out/var/lib/kvop /var/lib/kvop
USER 65532:65532
ENTRYPOINT ["/manager"]
