# syntax=docker/dockerfile:1
# Multi-stage: build every wheel in a throw-away stage, run from a slim image as a non-root user.
#
#   docker build -t peerlearn .
#   docker run -p 8080:8080 -p 40000-40199:40000-40199/udp -v peerlearn-data:/data \
#     -e PEERLEARN_SFU__ANNOUNCED_IP=<the host's public or LAN IP> peerlearn
#
# Development mode by default (SQLite in /data, a secret generated once into /data, migrations
# applied at start).  Production: -e PEERLEARN_SERVER__MODE=production plus a secret, a
# PostgreSQL URL and `docker run ... peerlearn migrate` once; see docs/operations.md.

FROM python:3.11-slim-bookworm AS build
# aiortc, av (with its FFmpeg, libvpx and libopus) and pylibsrtp come as binary wheels; the
# compiler is only there for a dependency that has no wheel for the build platform.
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY peerlearn_sfu ./peerlearn_sfu
COPY control ./control
COPY web ./web
COPY recommender ./recommender
COPY config ./config
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm AS runtime
RUN useradd --create-home --uid 10001 peerlearn \
    && mkdir -p /data && chown peerlearn:peerlearn /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels peerlearn && rm -rf /wheels
USER peerlearn
WORKDIR /home/peerlearn
ENV PEERLEARN_DATA_DIR=/data \
    PEERLEARN_SERVER__HOST=0.0.0.0 \
    PEERLEARN_SERVER__PORT=8080 \
    PEERLEARN_SFU__UDP_PORT_MIN=40000 \
    PEERLEARN_SFU__UDP_PORT_MAX=40199 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
# HTTP, and the SFU's UDP range: every ICE candidate is bound inside it, so publish it 1:1.
EXPOSE 8080/tcp
EXPOSE 40000-40199/udp
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['PEERLEARN_SERVER__PORT'], timeout=4)" || exit 1
ENTRYPOINT ["peerlearn"]
CMD ["serve", "--host", "0.0.0.0"]
