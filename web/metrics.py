"""Prometheus metrics: HTTP latency by route, the SFU's rooms and media counters, bookings and
the event bus's delay, served at ``/metrics`` (see docs/operations.md, "Metrics").

Names follow LiveKit's (``livekit_room_total`` → ``peerlearn_room_total``,
``livekit_packet_total{direction,type}`` → ``peerlearn_packet_total{direction,kind}``).

Where the figures live:

* HTTP, bookings and bus delay are ordinary ``prometheus_client`` metrics, recorded as they
  happen (``observe_request``, the bus's ``on_publish`` / ``on_delay`` hooks).
* The SFU's figures are read from its public stats (``SfuServer.stats()``), never from its
  internals: ``SfuCollector`` reads them at each scrape. Its per-participant counters vanish
  when a participant leaves and restart when one rejoins, so ``CounterAccumulator`` turns
  them into totals that only grow, sampled at each read.
* With several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set before the first import of
  ``prometheus_client``), each process writes its values to files in that folder and
  ``metrics_registry()`` serves the sum over every worker, whichever worker the scrape hits.
  A custom collector would only see its own process, so there ``SfuExporter`` copies the
  SFU's figures into file-backed metrics every ``SFU_EXPORT_INTERVAL_S`` instead.

``peerlearn_packet_total`` counts RTP packets (the SFU's ``packets_in`` / ``packets_out``);
``peerlearn_nack_total`` NACKed sequence numbers both ways, ``peerlearn_rtx_total`` the
retransmissions sent to subscribers. Not exported, because the SFU's public stats do not
have them: FIRs apart from PLIs, per-room CPU time and the signaling relay's latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import os
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from control.events import CATALOG_CHANNEL
from peerlearn_sfu import SfuServer
from web.keys import PLATFORM, SETTINGS, SFU

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SFU_EXPORT_INTERVAL_S = 5.0
#: request methods kept as a label value; anything else is "other" (bounded cardinality)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: headers a reverse proxy adds: a loopback peer that sends one is a proxied outsider
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
#: bookings are counted on the node that made them, from what it publishes here
BOOKING_EVENTS = {"booking_created": "created", "booking_cancelled": "cancelled"}


def multiprocess_mode() -> bool:
    """Whether values go to ``PROMETHEUS_MULTIPROC_DIR`` (several worker processes)."""
    return bool(os.environ.get(MULTIPROC_ENV))


def metrics_registry() -> CollectorRegistry:
    """The registry ``/metrics`` serves: the process's own, or with ``PROMETHEUS_MULTIPROC_DIR``
    a fresh one over every worker's files (the sum of all workers, built per scrape as the
    prometheus_client documentation says).

    A process manager that starts workers sets ``PROMETHEUS_MULTIPROC_DIR`` (an empty folder)
    before any worker imports ``prometheus_client``, and calls ``mark_worker_dead(pid)`` when
    a worker exits so its live gauges stop counting.
    """
    if not multiprocess_mode():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def mark_worker_dead(pid: int) -> None:
    """A worker exited: drop its ``livesum`` gauges (its counters keep counting)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


# --------------------------------------------------------------------------- HTTP, bus, bookings

HTTP_LATENCY = Histogram(
    "peerlearn_http_request_duration_seconds",
    "HTTP request latency by route pattern (WebSocket sessions are not included)",
    ("method", "route", "status"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BOOKINGS = Counter(
    "peerlearn_booking",
    "Bookings made and cancelled (or their payment hold released) on this node",
    ("event",),
)
BUS_DELAY = Histogram(
    "peerlearn_bus_delay_seconds",
    "Time from publication on one node to dispatch on this one (Redis event bus)",
    ("channel",),
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)


def route_of(request: web.BaseRequest) -> str:
    """The matched route's pattern (``/api/sessions/{id}/``), never the raw path: bounded."""
    match_info = getattr(request, "match_info", None)
    route = getattr(match_info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None:
        return "unmatched"
    return str(resource.canonical)


def observe_request(request: web.BaseRequest, status: int, seconds: float) -> None:
    method = request.method if request.method in METHODS else "other"
    HTTP_LATENCY.labels(method, route_of(request), str(status)).observe(seconds)


def channel_kind(channel: str) -> str:
    """``user:42`` → ``user``: one label value per kind of channel, not per user or session."""
    return channel.split(":", 1)[0]


def on_bus_delay(channel: str, seconds: float) -> None:
    BUS_DELAY.labels(channel_kind(channel)).observe(seconds)


def on_bus_publish(channel: str, message: dict[str, Any]) -> None:
    if channel == CATALOG_CHANNEL and (event := BOOKING_EVENTS.get(str(message.get("type")))):
        BOOKINGS.labels(event).inc()


# --------------------------------------------------------------------------- the SFU's figures

Labels = tuple[str, ...]


@dataclass
class SfuFigures:
    """One read of ``SfuServer.stats()``: gauges now, and each counter per source."""

    rooms: int = 0
    participants: int = 0
    tracks: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: counter name -> {(source key...): (labels, value)}
    counters: dict[str, dict[tuple[Any, ...], tuple[Labels, float]]] = field(
        default_factory=lambda: defaultdict(dict)
    )

    def add(self, name: str, key: tuple[Any, ...], labels: Labels, value: Any) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            self.counters[name][key] = (labels, float(value))


#: counters read from the stats: name -> (help, label names)
SFU_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "peerlearn_packet": (
        "RTP media packets received from publishers (incoming) and sent to subscribers (outgoing)",
        ("direction", "kind"),
    ),
    "peerlearn_nack": (
        "Sequence numbers NACKed: by the SFU to publishers (outgoing), by subscribers to "
        "the SFU (incoming)",
        ("direction",),
    ),
    "peerlearn_rtx": ("Retransmissions (RTX) sent to subscribers", ()),
    "peerlearn_packet_bytes": (
        "Bytes of encoded media received (incoming) and forwarded (outgoing)",
        ("direction", "kind"),
    ),
    "peerlearn_packet_dropped": (
        "Encoded packets not forwarded to a subscriber (it was behind, or waiting for a keyframe)",
        ("kind",),
    ),
    "peerlearn_packet_lost": (
        "RTP packets lost on the way from publishers, as their receivers report",
        ("kind",),
    ),
    "peerlearn_pli": (
        "PLIs: received from subscribers (incoming), sent to publishers (outgoing)",
        ("direction",),
    ),
    "peerlearn_keyframe_request": (
        "Keyframe wishes of every source (subscribers, joins, loss repair) before throttling",
        ("kind",),
    ),
}


def read_sfu(stats: dict[str, Any]) -> SfuFigures:
    """``SfuServer.stats()`` (docs/sfu.md, "Stats") as the figures exported."""
    out = SfuFigures()
    rooms = stats.get("rooms", {})
    out.rooms = len(rooms)
    for room_id, room in rooms.items():
        participants = room.get("participants", {})
        out.participants += len(participants)
        for user_id, p in participants.items():
            out.add(
                "peerlearn_nack", (room_id, user_id, "in"), ("incoming",), p.get("nacks_received")
            )
            out.add("peerlearn_rtx", (room_id, user_id), (), p.get("retransmissions_sent"))
            for kind, pub in (p.get("publish") or {}).items():
                key = (room_id, user_id, kind)
                out.tracks[kind] += 1
                out.add("peerlearn_packet", (*key, "in"), ("incoming", kind), pub.get("packets_in"))
                out.add("peerlearn_nack", (*key, "out"), ("outgoing",), pub.get("nacks_sent"))
                out.add(
                    "peerlearn_packet_bytes", (*key, "in"), ("incoming", kind), pub.get("bytes_in")
                )
                out.add("peerlearn_packet_lost", key, (kind,), pub.get("packets_lost"))
                out.add("peerlearn_pli", (*key, "out"), ("outgoing",), pub.get("keyframes_sent"))
                out.add("peerlearn_keyframe_request", key, (kind,), pub.get("keyframes_requested"))
            for slot in p.get("subscribe") or ():
                kind = str(slot.get("kind") or "none")
                slot_key = (room_id, user_id, slot.get("user_id"), kind)
                labels = ("outgoing", kind)
                out.add("peerlearn_packet", (*slot_key, "out"), labels, slot.get("packets_out"))
                out.add("peerlearn_packet_bytes", (*slot_key, "out"), labels, slot.get("bytes_out"))
                out.add("peerlearn_packet_dropped", slot_key, (kind,), slot.get("frames_dropped"))
                out.add(
                    "peerlearn_pli",
                    (*slot_key, "in"),
                    ("incoming",),
                    slot.get("keyframe_requests_from_subscriber"),
                )
    return out


class CounterAccumulator:
    """Totals that only grow, from counters that vanish (a participant left) or restart (it
    rejoined): each read adds what every source gained since the previous read, or all of a
    source's value when it is new or went backwards."""

    def __init__(self) -> None:
        self._last: dict[str, dict[tuple[Any, ...], float]] = defaultdict(dict)
        self.totals: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))

    def update(self, figures: SfuFigures) -> dict[str, dict[Labels, float]]:
        """Fold ``figures`` in; returns what each label set gained (the exporter's deltas)."""
        gained: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        for name in SFU_COUNTERS:
            sources = figures.counters.get(name, {})
            last = self._last[name]
            for key, (labels, value) in sources.items():
                previous = last.get(key)
                delta = value if previous is None or value < previous else value - previous
                if delta:
                    self.totals[name][labels] += delta
                    gained[name][labels] += delta
            self._last[name] = {key: value for key, (_labels, value) in sources.items()}
        return gained


class SfuCollector(Collector):
    """A custom collector over the app's SFU, read at each scrape (one process)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._totals = CounterAccumulator()

    def _figures(self) -> SfuFigures:
        sfu: SfuServer | None = self._app.get(SFU)
        return read_sfu(sfu.stats()) if sfu is not None else SfuFigures()

    def collect(self) -> Iterator[Metric]:
        figures = self._figures()
        self._totals.update(figures)
        yield GaugeMetricFamily("peerlearn_room_total", "Rooms open on this node", figures.rooms)
        yield GaugeMetricFamily(
            "peerlearn_participant_total", "Participants in this node's rooms", figures.participants
        )
        tracks = GaugeMetricFamily(
            "peerlearn_track_published_total", "Tracks being published", labels=("kind",)
        )
        for kind, n in sorted(figures.tracks.items()):
            tracks.add_metric((kind,), n)
        yield tracks
        for name, (help_text, label_names) in SFU_COUNTERS.items():
            family = CounterMetricFamily(name, help_text, labels=label_names)
            for labels, value in sorted(self._totals.totals[name].items()):
                family.add_metric(labels, value)
            yield family


class SfuExporter:
    """Multiprocess mode: the same figures copied into file-backed metrics, so the worker that
    answers a scrape reports every worker's rooms."""

    def __init__(self) -> None:
        self._totals = CounterAccumulator()
        self.rooms = Gauge("peerlearn_room_total", "Rooms open", multiprocess_mode="livesum")
        self.participants = Gauge(
            "peerlearn_participant_total", "Participants in rooms", multiprocess_mode="livesum"
        )
        self.tracks = Gauge(
            "peerlearn_track_published_total",
            "Tracks being published",
            ("kind",),
            multiprocess_mode="livesum",
        )
        self._seen_kinds: set[str] = set()
        self.counters = {
            name: Counter(name, help_text, label_names)
            for name, (help_text, label_names) in SFU_COUNTERS.items()
        }

    def export(self, figures: SfuFigures) -> None:
        self.rooms.set(figures.rooms)
        self.participants.set(figures.participants)
        for kind in self._seen_kinds | set(figures.tracks):
            self.tracks.labels(kind).set(figures.tracks.get(kind, 0))
        self._seen_kinds |= set(figures.tracks)
        for name, gained in self._totals.update(figures).items():
            for labels, delta in gained.items():
                self.counters[name].labels(*labels).inc(delta)


_exporter: SfuExporter | None = None


def _sfu_exporter() -> SfuExporter:
    global _exporter  # file-backed metrics are per process: created once, on first use
    if _exporter is None:
        _exporter = SfuExporter()
    return _exporter


# --------------------------------------------------------------------------- /metrics


def _loopback_peer(request: web.Request) -> bool:
    """The TCP peer itself is on this machine and no proxy relayed the request."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    host = peer[0] if isinstance(peer, tuple) and peer else None
    if host is None:  # a Unix socket: only this machine can reach it
        return not any(h in request.headers for h in PROXY_HEADERS)
    try:
        loopback = ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
    return loopback and not any(h in request.headers for h in PROXY_HEADERS)


def may_read_metrics(request: web.Request) -> bool:
    """``[metrics] token`` set: the bearer token, from anywhere; unset: loopback peers only."""
    token = request.app[SETTINGS].metrics.token
    if token:
        sent = request.headers.get("Authorization", "")
        scheme, _, value = sent.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), token.encode()
        )
    return _loopback_peer(request)


async def metrics_view(request: web.Request) -> web.Response:
    if not may_read_metrics(request):
        raise web.HTTPForbidden(reason="metrics are for the operator's scraper")
    if multiprocess_mode():
        _export_sfu(request.app)  # this worker's own figures as fresh as the scrape
        body = generate_latest(metrics_registry())
    else:
        body = generate_latest(REGISTRY) + generate_latest(request.app[APP_REGISTRY])
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    response.headers["Cache-Control"] = "no-store"
    return response


def _export_sfu(app: web.Application) -> None:
    sfu: SfuServer | None = app.get(SFU)
    if sfu is not None:
        _sfu_exporter().export(read_sfu(sfu.stats()))


APP_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)


def setup(app: web.Application) -> None:
    """``/metrics`` (when ``[metrics] enabled``), the SFU's figures and the bus's hooks."""
    settings = app[SETTINGS]
    if not settings.metrics.enabled:
        return
    # One process: the SFU collector lives in a registry of this app's own, so apps made by
    # tests never register twice in the process-wide one.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SfuCollector(app))
    app[APP_REGISTRY] = registry
    app.router.add_get("/metrics", metrics_view)

    async def hooks_ctx(app: web.Application) -> AsyncIterator[None]:
        bus = app[PLATFORM].bus
        bus.on_delay, bus.on_publish = on_bus_delay, on_bus_publish
        exporter: asyncio.Task[None] | None = None
        if multiprocess_mode():
            exporter = asyncio.create_task(_export_every(app), name="metrics-sfu-export")
        yield
        if exporter is not None:
            exporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await exporter
        bus.on_delay = bus.on_publish = None

    app.cleanup_ctx.append(hooks_ctx)


async def _export_every(app: web.Application) -> None:
    while True:
        try:
            _export_sfu(app)
        except Exception:
            log.exception("exporting the SFU's metrics failed")
        await asyncio.sleep(SFU_EXPORT_INTERVAL_S)
