# bedrock-gateway container image.
#
#   docker build -t bedrock-gateway:0.1.0 .
#   docker run --rm -p 8080:8080 --stop-timeout 40 \
#     -v "$PWD/config.yaml:/etc/bedrock-gateway/config.yaml:ro" \
#     -e AWS_DEFAULT_REGION=us-west-2 bedrock-gateway:0.1.0
#
# Two stages: the builder installs the package and its dependencies into a virtualenv;
# the runtime stage copies only that virtualenv onto a clean base, so no build tools,
# pip caches or sources end up in the image. Both stages use the same base image, so the
# virtualenv's interpreter symlinks stay valid.

FROM python:3.11.13-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/bedrock-gateway

WORKDIR /src
# Only what building the wheel needs (.dockerignore keeps the rest out of the context).
COPY pyproject.toml README.md ./
COPY gateway ./gateway

# The dependencies (uvloop, httptools, asyncpg, pydantic-core) ship manylinux wheels for
# CPython 3.11 on amd64 and arm64, so no compiler is needed. pip is removed afterwards:
# nothing installs packages at run time.
RUN /opt/bedrock-gateway/bin/pip install --no-cache-dir /src \
    && /opt/bedrock-gateway/bin/pip uninstall --yes pip


FROM python:3.11.13-slim-bookworm

LABEL org.opencontainers.image.title="bedrock-gateway" \
      org.opencontainers.image.description="OpenAI-compatible HTTP gateway in front of Amazon Bedrock" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/bedrock-gateway/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# A fixed numeric UID/GID, so Kubernetes can check runAsNonRoot without resolving names.
# /var/lib/bedrock-gateway is the working directory: the default usage store
# (sqlite:///gateway-usage.db) and the recorder's spill file land there. With a read-only
# root filesystem, mount a volume on it.
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/bedrock-gateway --shell /usr/sbin/nologin gateway \
    && mkdir -p /var/lib/bedrock-gateway /etc/bedrock-gateway \
    && chown 10001:10001 /var/lib/bedrock-gateway

COPY --from=builder /opt/bedrock-gateway /opt/bedrock-gateway

WORKDIR /var/lib/bedrock-gateway
USER 10001:10001

EXPOSE 8080

# slim images have no curl: probe /healthz with the standard library. urlopen raises on
# any non-2xx answer or connection error, which exits non-zero.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"]

# On SIGTERM the gateway fails /readyz, finishes in-flight requests for up to
# server.graceful_shutdown_s (30 s by default) and flushes the usage queue: give
# `docker stop` more than that (--stop-timeout / -t), Docker's default is only 10 s.
ENTRYPOINT ["bedrock-gateway"]
CMD ["serve", "--config", "/etc/bedrock-gateway/config.yaml"]
