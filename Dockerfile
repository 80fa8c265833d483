# ferryd as a static binary on distroless, running as the nonroot user.
#
#   docker build -t ferryd .
#   docker run -p 8321:8321 -v ferry-data:/data -v $PWD/keys.yaml:/keys.yaml:ro \
#     -e FERRY_API_KEYS_FILE=/keys.yaml ferryd    # embedded bbolt + filesystem under /data
#
# It listens on 0.0.0.0, so it starts only with API keys (FERRY_API_KEYS_FILE)
# or FERRY_INSECURE_OPEN=1 when something in front of it checks access.
# Configure Redis and S3 with the FERRY_* environment (see README.md);
# docker-compose.yml runs the whole stack.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so editing code does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /ferryd ./cmd/ferryd
# distroless has no shell to mkdir with: make the data directory here, so a
# fresh volume mounted on /data starts out owned by nonroot (65532).
RUN mkdir /data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /ferryd /ferryd
COPY --from=build --chown=65532:65532 /data /data
USER nonroot
EXPOSE 8321
# 0.0.0.0 because the container's network is the boundary; ferryd's own
# default (127.0.0.1) would be unreachable from outside the container.
ENTRYPOINT ["/ferryd", "--addr", "0.0.0.0:8321", "--data-dir", "/data"]
