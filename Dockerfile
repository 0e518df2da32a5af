# syntax=docker/dockerfile:1
# Multi-stage: build every wheel in a throw-away stage, run from a slim image as a non-root user.
#
#   docker build -t peerlearn .
#
# Development (the default: SQLite in /data, a secret generated once into /data, migrations
# applied at start, mail printed to the log; `serve` warns that it listens on 0.0.0.0):
#
#   docker run -p 8080:8080 -p 40000:40000/udp -v peerlearn-data:/data \
#     -e PEERLEARN_SFU__ANNOUNCED_IP=<the host's public or LAN IP> peerlearn
#
# Production: give it production settings, either as a config file mounted at
# /etc/peerlearn/peerlearn.toml (used whenever it exists; PEERLEARN_CONFIG names another) or
# as PEERLEARN_<SECTION>__<KEY> variables (they win over the file). Start from
# config/production.toml.example; `serve` then runs the `check --deploy` checks and refuses
# to start, one line naming the key, on a weak secret, cookie_secure = false, no https
# public_url or console mail. Behind a TLS proxy on the host:
#
#   docker run --rm -v /etc/peerlearn/peerlearn.toml:/etc/peerlearn/peerlearn.toml:ro \
#     peerlearn check --deploy                                   # the checks alone
#   docker run --rm -v /etc/peerlearn/peerlearn.toml:/etc/peerlearn/peerlearn.toml:ro \
#     peerlearn migrate                                          # once, and after upgrades
#   docker run -d -p 127.0.0.1:8080:8080 -p 40000:40000/udp -v peerlearn-data:/data \
#     -v /etc/peerlearn/peerlearn.toml:/etc/peerlearn/peerlearn.toml:ro \
#     -e PEERLEARN_SERVER__TRUSTED_PROXIES=172.17.0.1 peerlearn
#
# or with variables only: -e PEERLEARN_SERVER__MODE=production
# -e PEERLEARN_SERVER__SECRET_KEY=... -e PEERLEARN_SERVER__PUBLIC_URL=https://learn.example.org
# -e PEERLEARN_SERVER__COOKIE_SECURE=true -e PEERLEARN_DATABASE__URL=postgresql://...
# -e PEERLEARN_REDIS__URL=redis://... -e PEERLEARN_EMAIL__BACKEND=smtp
# -e PEERLEARN_EMAIL__SMTP_HOST=... (and the rest of [email]).
# The image's own variables below (data folder /data, host 0.0.0.0, port 8080, UDP port
# 40000) override the file's values on purpose. trusted_proxies must name the address the
# proxy reaches the container from (Docker's bridge gateway, 172.17.0.1 by default), or the
# per-address login limits would count every user as the proxy. See docs/operations.md.

FROM python:3.11-slim-bookworm AS build
# aiortc, av (with its FFmpeg, libvpx and libopus) and pylibsrtp come as binary wheels; the
# compiler is only there for a dependency that has no wheel for the build platform.
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.cfg README.md constraints.txt ./
COPY peerlearn_sfu ./peerlearn_sfu
COPY control ./control
COPY web ./web
COPY recommender ./recommender
COPY config ./config
RUN pip wheel --no-cache-dir -c constraints.txt --wheel-dir /wheels .

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
    PEERLEARN_SFU__UDP_PORT=40000 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
# HTTP, and the SFU's one UDP port (all media of the node; publish it 1:1). Range mode
# instead: -e PEERLEARN_SFU__UDP_PORT=0 and publish udp_port_min..udp_port_max.
EXPOSE 8080/tcp
EXPOSE 40000/udp
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['PEERLEARN_SERVER__PORT'], timeout=4)" || exit 1
# A config file mounted at /etc/peerlearn/peerlearn.toml is used when PEERLEARN_CONFIG is not
# set; "$@" is the command (serve by default; migrate, check --deploy, create-admin ...).
ENTRYPOINT ["/bin/sh", "-c", "if [ -z \"${PEERLEARN_CONFIG:-}\" ] && [ -f /etc/peerlearn/peerlearn.toml ]; then export PEERLEARN_CONFIG=/etc/peerlearn/peerlearn.toml; fi; exec peerlearn \"$@\"", "peerlearn"]
CMD ["serve"]
