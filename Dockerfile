# wxlogin's image: the static binary (CGO_ENABLED=0: the SQLite driver is pure Go, and
# the time zones are inside it), the CA certificates it calls WeChat over HTTPS with,
# and nothing else, run as a user that is not root.
#
# It is built FROM scratch around a binary built beforehand, as release tools do:
# `make image` builds the binary and stages the files in build/image/rootfs/, then runs
# this file (with Docker, or with Podman where Docker is absent). CI builds and runs
# exactly this image (internal/image).
#
#   make image                           # localhost/wxlogin:dev
#   make image IMAGE=registry.example.com/wxlogin:1.4.0
#   docker run -p 8080:8080 localhost/wxlogin:dev     # dev mode: SQLite in /data, a fake WeChat
FROM scratch

ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="wxlogin" \
      org.opencontainers.image.description="Silent login for WeChat mini-programs, as a GraphQL back end" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT"

# /wxlogin, /etc/ssl/certs/ca-certificates.crt, and /data for dev mode's SQLite file.
COPY --chown=65532:65532 build/image/rootfs/ /

USER 65532:65532
WORKDIR /data
ENV WXLOGIN_ADDR=:8080
# 8080: the API; 9100: /metrics when WXLOGIN_OPS_ADDR=:9100.
EXPOSE 8080 9100
# No shell and no curl in the image: the binary asks its own /healthz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/wxlogin", "healthcheck"]
# SIGTERM drains in-flight requests (WXLOGIN_SHUTDOWN_GRACE, 20 s) and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/wxlogin"]
