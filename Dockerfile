# HealMyDocker: the static binaries and nothing else, so no base image is
# pulled. `make image` builds the binaries first and then this.
FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="HealMyDocker" \
      org.opencontainers.image.description="Restarts unhealthy Docker containers; event-sourced on embedded NATS JetStream" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/healmydocker/healmydocker"
# /notifier and /cleaner are links to /healer, which runs as the command
# it is called by: three commands, one binary.
COPY bin/image/ /
ENV HMD_DATA_DIR=/data \
    HMD_HTTP_ADDRESS=127.0.0.1
VOLUME /data
HEALTHCHECK --interval=10s --timeout=5s --retries=3 CMD ["/healer", "healthcheck"]
ENTRYPOINT ["/healer"]
