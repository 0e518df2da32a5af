# syntax=docker/dockerfile:1
# Multi-stage: build wheels with compilers, run from a slim image as a non-root user.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential pkg-config \
    libavformat-dev libavcodec-dev libavdevice-dev libavutil-dev libswscale-dev libswresample-dev \
    libavfilter-dev libopus-dev libvpx-dev libsrtp2-dev libffi-dev \
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
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER peerlearn
WORKDIR /home/peerlearn
ENV PEERLEARN_DATA_DIR=/data \
    PEERLEARN_SERVER__HOST=0.0.0.0 \
    PEERLEARN_SERVER__PORT=8080 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
# HTTP, and the SFU's UDP range (config [sfu] udp_port_min..udp_port_max)
EXPOSE 8080/tcp
EXPOSE 40000-40199/udp
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)" || exit 1
CMD ["peerlearn", "serve", "--host", "0.0.0.0"]
