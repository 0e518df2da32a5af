"""Nodes sharing rooms over Redis: a registry, room claims and the signaling relay.

Every worker process is a *node*. A node registers itself under ``node:<id>`` (its media
address, rooms, participants and CPU) with a TTL that its heartbeat renews; a node that
stops beating disappears from the registry by itself. A room has exactly one *owner*,
claimed with ``SET room:<id> <node> NX PX <ttl>`` and kept alive by the owner's heartbeat;
a room nobody owns goes to the least-loaded live node (lowest CPU, as LiveKit's
``cpuload`` selector; rooms and participants break ties so a burst of new rooms that all
see the same stale CPU figures still spreads).

The node holding a participant's WebSocket (the *edge*) relays that participant's
signaling to the owner through two Redis Streams, ``up:<conn>`` and ``down:<conn>``:
one writer and one reader each, so order is the stream's order. A reader deletes what it
has handled (``XDEL``), so a stream's length is the backlog the other side has not read;
a writer that finds the backlog over ``relay_backlog`` waits for it to shrink
(back-pressure: the owner's outbox then applies its usual stall limit to a client that
stops reading; the edge stops reading a browser that floods). ``MAXLEN`` caps each
stream in any case, and every key carries a TTL so nothing outlives a dead node.

Nothing here knows aiohttp or the SFU: messages are JSON dicts; ``web.rooms`` binds them
to rooms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from control.redis_scripts import RELEASE_IF_OWNER, RENEW_IF_OWNER

log = logging.getLogger(__name__)

PREFIX = "peerlearn:cluster:"

#: Place a room atomically. KEYS[1] = the room's claim, KEYS[1 + i] = node i's "placed"
#: counter; ARGV = claim TTL ms, counter TTL ms, then per node: id, CPU in tenths of a core,
#: rooms, participants. The least loaded by (CPU, rooms + placed, participants, id) gets the
#: claim (SET NX) and one more "placed"; returns its id, or false when the room was claimed.
_PLACE = """
local best, b1, b2, b3
for i = 2, #KEYS do
  local a = 3 + (i - 2) * 4
  local id = ARGV[a]
  local cpu = tonumber(ARGV[a + 1])
  local rooms = tonumber(ARGV[a + 2]) + tonumber(redis.call('GET', KEYS[i]) or '0')
  local parts = tonumber(ARGV[a + 3])
  if best == nil or cpu < b1 or (cpu == b1 and (rooms < b2 or (rooms == b2 and
     (parts < b3 or (parts == b3 and id < best))))) then
    best, b1, b2, b3 = id, cpu, rooms, parts
  end
end
if best == nil then return false end
if redis.call('SET', KEYS[1], best, 'NX', 'PX', ARGV[1]) then
  for i = 2, #KEYS do
    if ARGV[3 + (i - 2) * 4] == best then
      redis.call('INCR', KEYS[i])
      redis.call('PEXPIRE', KEYS[i], ARGV[2])
    end
  end
  return best
end
return false
"""


#: Control fields of a relay entry (client messages travel in ``m``).
OPEN = "open"  # edge -> owner's inbox: a participant joins through the relay
CLOSE = "close"  # either way: the other side is gone (``reason`` says why)
KEEPALIVE = "ka"  # edge -> owner, every heartbeat: this participant's socket is still there
REMOVE = "remove"  # edge -> owner: end this participant (a revoked login)


@dataclass(frozen=True)
class ClusterOptions:
    """The ``[cluster]`` settings a node needs (``config.settings.ClusterSettings``)."""

    heartbeat_s: float = 1.0
    node_ttl_s: float = 5.0
    relay_backlog: int = 256
    relay_maxlen: int = 4096
    relay_block_ms: int = 1000


@dataclass
class NodeInfo:
    """One node's registry entry."""

    node_id: str
    media: str  # host:port of its SFU (announced_ip, its own UDP port)
    rooms: int = 0
    participants: int = 0
    cpu: float = 0.0  # this process's CPU over the last heartbeat, in cores (0..1 per core)
    draining: bool = False
    updated: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)  # for operators: which process on its host

    #: rooms claimed for this node since its last heartbeat (not in ``rooms`` yet)
    placed: int = 0

    def score(self) -> tuple[float, int, int, str]:
        """Lower is less loaded: CPU first (LiveKit's ``cpuload``), in tenths of a core so
        that noise between idle nodes does not decide, then rooms (those just placed too:
        a burst of new rooms within one heartbeat spreads instead of herding)."""
        return (round(self.cpu, 1), self.rooms + self.placed, self.participants, self.node_id)


def new_node_id(worker_index: int) -> str:
    """Unique per process start: a restarted worker never inherits stale claims."""
    return f"{socket.gethostname()}-w{worker_index}-{uuid.uuid4().hex[:6]}"


Load = Callable[[], tuple[int, int]]  # (rooms, participants) hosted here now
OnOpen = Callable[["RelayChannel", dict[str, Any]], Awaitable[None]]
OnLost = Callable[[str], Awaitable[None]]


class CpuMeter:
    """This process's CPU use between two readings (``time.process_time`` / wall time)."""

    def __init__(self) -> None:
        self._cpu = time.process_time()
        self._wall = time.monotonic()

    def read(self) -> float:
        cpu, wall = time.process_time(), time.monotonic()
        used = (cpu - self._cpu) / max(wall - self._wall, 1e-6)
        self._cpu, self._wall = cpu, wall
        return max(0.0, used)


class RelayChannel:
    """One participant's relay seen from one side: send to ``out_key``, read ``in_key``."""

    def __init__(
        self,
        redis: Any,
        conn: str,
        *,
        outgoing: str,
        incoming: str,
        options: ClusterOptions,
        peer: str,
    ) -> None:
        self.conn = conn
        self.peer = peer  # the node on the other side
        self._redis = redis
        self._out = PREFIX + f"{outgoing}:{conn}"
        self._in = PREFIX + f"{incoming}:{conn}"
        self._options = options
        self._last = "0-0"
        self._heard = time.monotonic()
        self._ttl_ms = int(options.node_ttl_s * 4000)
        self.closed = False

    async def send(self, message: dict[str, Any]) -> None:
        """Append a client message, waiting while the reader is ``relay_backlog`` behind."""
        await self._append({"m": json.dumps(message, separators=(",", ":"), default=str)})

    async def control(self, kind: str, **fields: Any) -> None:
        await self._append({"c": kind, **{k: json.dumps(v) for k, v in fields.items()}})

    async def _append(self, entry: dict[str, str]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.xadd(
            self._out,
            {"t": repr(time.time()), **entry},
            maxlen=self._options.relay_maxlen,
            approximate=True,
        )
        pipe.pexpire(self._out, self._ttl_ms)
        pipe.xlen(self._out)
        backlog = (await pipe.execute())[-1]
        # Back-pressure: the reader is behind; wait here until it catches up.
        while backlog > self._options.relay_backlog and not self.closed:
            await asyncio.sleep(0.02)
            backlog = await self._redis.xlen(self._out)

    async def receive(self) -> list[tuple[dict[str, Any] | None, dict[str, Any], float]]:
        """The next entries, in order: ``(client message or None, control fields, sent at)``;
        an empty list after ``relay_block_ms`` without any (the caller checks liveness)."""
        reply = await self._redis.xread(
            {self._in: self._last}, block=self._options.relay_block_ms, count=64
        )
        out: list[tuple[dict[str, Any] | None, dict[str, Any], float]] = []
        if not reply:
            return out
        self._heard = time.monotonic()
        ids = []
        for entry_id, fields in reply[0][1]:
            ids.append(entry_id)
            self._last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            decoded = {k.decode(): v.decode() for k, v in fields.items()}
            sent = float(decoded.pop("t", "0"))
            if "m" in decoded:
                out.append((json.loads(decoded["m"]), {}, sent))
            else:
                control = {"c": decoded.pop("c", "")}
                control.update({k: json.loads(v) for k, v in decoded.items()})
                out.append((None, control, sent))
        await self._redis.xdel(self._in, *ids)  # the writer's backlog shrinks
        return out

    @property
    def silent_for(self) -> float:
        """Seconds since anything arrived from the other side."""
        return time.monotonic() - self._heard

    async def close(self, reason: str, **fields: Any) -> None:
        """Tell the other side (once) and drop both streams' TTLs to a short grace."""
        if self.closed:
            return
        self.closed = True  # set first: the farewell never waits on back-pressure
        with contextlib.suppress(Exception):
            await self.control(CLOSE, reason=reason, **fields)
        with contextlib.suppress(Exception):
            await self._redis.pexpire(self._in, 1000)


class Cluster:
    """This node's view of the cluster: registry, claims, relay (see the module doc)."""

    def __init__(
        self,
        url: str,
        *,
        node_id: str,
        media: str,
        options: ClusterOptions,
        load: Load,
    ) -> None:
        import redis.asyncio as redis  # as in control.events: only clusters pay the import

        self.node_id = node_id
        self.media = media
        self.options = options
        self._redis: Any = redis.from_url(url)  # redis-py: loose stubs
        self._load = load
        self._cpu = CpuMeter()
        self._owned: set[str] = set()  # rooms this node claimed or was handed
        self._tasks: set[asyncio.Task[None]] = set()
        self._beat: asyncio.Task[None] | None = None
        self._inbox: asyncio.Task[None] | None = None
        self._on_open: OnOpen | None = None
        self._on_lost: OnLost | None = None
        self._inbox_from = "$"
        self._alive_cache: dict[str, tuple[float, bool]] = {}
        self.draining = False
        self.cpu = 0.0

    # -- lifecycle -----------------------------------------------------------------

    @property
    def _ttl_ms(self) -> int:
        return int(self.options.node_ttl_s * 1000)

    async def start(self, on_open: OnOpen, on_lost: OnLost | None = None) -> None:
        """Register, then beat and serve relayed joins until :meth:`close`.

        ``on_open(channel, hello)`` serves one relayed participant; ``on_lost(room_id)`` is
        told that a room's claim went to another node (this node missed its renewals).
        """
        self._on_open = on_open
        self._on_lost = on_lost
        # Joins are read from now on (Redis's clock): an inbox left by an earlier start
        # under the same configured node id holds joins whose sockets are long gone.
        seconds, micros = await self._redis.time()
        self._inbox_from = f"{int(seconds) * 1000 + int(micros) // 1000}-0"
        await self._register()
        self._beat = asyncio.create_task(self._heartbeat(), name="cluster-heartbeat")
        self._inbox = asyncio.create_task(self._serve_inbox(), name="cluster-inbox")
        log.info("cluster node %s (media %s) registered", self.node_id, self.media)

    async def close(self) -> None:
        for task in (self._beat, self._inbox, *self._tasks):
            if task is not None:
                task.cancel()
        for task in (self._beat, self._inbox, *self._tasks):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        with contextlib.suppress(Exception):
            for room_id in list(self._owned):
                await self.release(room_id)
            await self._redis.delete(PREFIX + f"node:{self.node_id}")
            await self._redis.srem(PREFIX + "nodes", self.node_id)
        await self._redis.aclose()

    async def drain(self) -> None:
        """Take no new rooms from now on (the registry says so at once)."""
        self.draining = True
        await self._register()

    def info(self) -> NodeInfo:
        rooms, participants = self._load()
        return NodeInfo(
            self.node_id, self.media, rooms, participants, self.cpu, self.draining, time.time()
        )

    async def _register(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(PREFIX + f"node:{self.node_id}", json.dumps(asdict(self.info())), px=self._ttl_ms)
        pipe.sadd(PREFIX + "nodes", self.node_id)
        pipe.delete(PREFIX + f"placed:{self.node_id}")  # counted in ``rooms`` from now on
        await pipe.execute()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.options.heartbeat_s)
            try:
                self.cpu = self._cpu.read()
                await self._register()
                for room_id in list(self._owned):
                    renewed = await self._redis.eval(
                        RENEW_IF_OWNER, 1, PREFIX + f"room:{room_id}", self.node_id, self._ttl_ms
                    )
                    if not renewed:  # expired and taken elsewhere: no longer ours
                        log.warning("room %s: claim lost by node %s", room_id, self.node_id)
                        self._owned.discard(room_id)
                        if self._on_lost is not None:
                            self.spawn(self._on_lost(room_id))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cluster heartbeat failed; retrying")

    # -- registry and placement ------------------------------------------------------

    async def nodes(self) -> list[NodeInfo]:
        """Live nodes (their registry entry has not expired)."""
        ids = sorted(m.decode() for m in await self._redis.smembers(PREFIX + "nodes"))
        if not ids:
            return []
        raw = await self._redis.mget(
            [PREFIX + f"node:{i}" for i in ids] + [PREFIX + f"placed:{i}" for i in ids]
        )
        live: list[NodeInfo] = []
        gone: list[str] = []
        known = set(NodeInfo.__dataclass_fields__) - {"placed"}
        for node_id, value, placed in zip(ids, raw[: len(ids)], raw[len(ids) :], strict=True):
            if value is None:
                gone.append(node_id)
            else:
                entry = {k: v for k, v in json.loads(value).items() if k in known}
                live.append(NodeInfo(**entry, placed=int(placed or 0)))
        if gone:  # expired entries: tidy the index
            await self._redis.srem(PREFIX + "nodes", *gone)
        return live

    async def alive(self, node_id: str) -> bool:
        """Whether ``node_id`` is registered (cached for a heartbeat: many relays ask)."""
        if node_id == self.node_id:
            return True
        now = time.monotonic()
        cached = self._alive_cache.get(node_id)
        if cached is not None and now - cached[0] < self.options.heartbeat_s:
            return cached[1]
        alive = bool(await self._redis.exists(PREFIX + f"node:{node_id}"))
        self._alive_cache[node_id] = (now, alive)
        return alive

    async def owner(self, room_id: str) -> str | None:
        value = await self._redis.get(PREFIX + f"room:{room_id}")
        return value.decode() if value is not None else None

    async def place(self, room_id: str) -> str:
        """The room's live owner; claims it for the least-loaded live node if it has none."""
        key = PREFIX + f"room:{room_id}"
        for _attempt in range(5):
            current = await self.owner(room_id)
            if current is not None:
                if await self.alive(current):
                    if current == self.node_id:
                        self._owned.add(room_id)
                    return current
                # Its owner stopped beating: take the claim away (only if unchanged).
                await self._redis.eval(RELEASE_IF_OWNER, 1, key, current)
            candidates = [n for n in await self.nodes() if not n.draining]
            if not candidates:
                candidates = [self.info()]  # only draining nodes: keep serving here
            # Choose and claim in one script: rooms placed at the same moment from several
            # nodes see each other's "just placed" counts and spread instead of herding.
            args: list[Any] = [self._ttl_ms, int(self.options.heartbeat_s * 2000)]
            for n in candidates:
                args += [n.node_id, int(round(n.cpu, 1) * 10), n.rooms, n.participants]
            keys = [key] + [PREFIX + f"placed:{n.node_id}" for n in candidates]
            claimed = await self._redis.eval(_PLACE, len(keys), *keys, *args)
            if claimed:
                chosen = claimed.decode() if isinstance(claimed, bytes) else str(claimed)
                log.info("room %s placed on node %s", room_id, chosen)
                if chosen == self.node_id:
                    self._owned.add(room_id)
                return chosen
        raise RuntimeError(f"room {room_id}: could not settle an owner")

    def adopt(self, room_id: str) -> None:
        """This node hosts ``room_id`` (a relayed join arrived): renew its claim."""
        self._owned.add(room_id)

    async def release(self, room_id: str) -> None:
        """The room closed here: free the claim so the next join places it afresh."""
        self._owned.discard(room_id)
        await self._redis.eval(RELEASE_IF_OWNER, 1, PREFIX + f"room:{room_id}", self.node_id)

    # -- relay -----------------------------------------------------------------------

    async def connect(self, owner: str, hello: dict[str, Any]) -> RelayChannel:
        """Edge side: open a relayed participant on ``owner`` (``hello``: room, identity)."""
        conn = uuid.uuid4().hex
        channel = RelayChannel(
            self._redis, conn, outgoing="up", incoming="down", options=self.options, peer=owner
        )
        entry = {"c": OPEN, "conn": conn, "edge": self.node_id, "hello": json.dumps(hello)}
        pipe = self._redis.pipeline(transaction=False)
        pipe.xadd(PREFIX + f"inbox:{owner}", entry, maxlen=self.options.relay_maxlen)
        pipe.pexpire(PREFIX + f"inbox:{owner}", self._ttl_ms * 4)
        await pipe.execute()
        return channel

    async def _serve_inbox(self) -> None:
        key = PREFIX + f"inbox:{self.node_id}"
        last = self._inbox_from
        while True:
            try:
                reply = await self._redis.xread(
                    {key: last}, block=self.options.relay_block_ms, count=64
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cluster inbox read failed; retrying")
                await asyncio.sleep(1.0)
                continue
            for entry_id, fields in reply[0][1] if reply else ():
                last = entry_id.decode()
                decoded = {k.decode(): v.decode() for k, v in fields.items()}
                if decoded.get("c") != OPEN:
                    continue
                channel = RelayChannel(
                    self._redis,
                    decoded["conn"],
                    outgoing="down",
                    incoming="up",
                    options=self.options,
                    peer=decoded["edge"],
                )
                self.spawn(self._open(channel, json.loads(decoded["hello"])))
            if reply:
                await self._redis.xtrim(key, minid=last)

    async def _open(self, channel: RelayChannel, hello: dict[str, Any]) -> None:
        assert self._on_open is not None
        try:
            await self._on_open(channel, hello)
        finally:
            await channel.close("closed")

    def spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def default_media_address(announced_ip: str | None, host: str, port: int) -> str:
    """What the registry shows as a node's media address."""
    return f"{announced_ip or host or os.uname().nodename}:{port}"
