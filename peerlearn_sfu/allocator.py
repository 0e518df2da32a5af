"""Per-subscriber bandwidth allocation over temporal layers (LiveKit's stream allocator,
reduced to what one VP8 L1T3 stream per camera allows).

A subscriber's budget is its own receive estimate (the REMB its browser sends on the
subscribe leg). It is spent in order — audio, then screen shares, then the active speaker's
camera, then the other cameras — and each layered video gets the highest temporal layer
whose measured bitrate (that layer and the ones below) still fits. A stream that is not
layered (a Firefox camera, a screen share) costs its whole bitrate. Pure: plain numbers in,
target layers out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .forwarder import MAX_LAYER

#: Going up needs this much room above the layer's rate (its rate still grows after the
#: switch: higher layers' frames are added, and REMB lags); going down does not.
UP_HEADROOM = 1.15
#: A browser's receive estimate (REMB) grows to ~1.5× what it receives and no further, so a
#: subscriber held at a low layer would never show room for the next one. When the estimate
#: leaves this much room above the current layer's rate it is not what limits the stream:
#: one layer up (if the link cannot take it, the estimate falls and the layer follows).
PROBE_ROOM = 1.3
PRIORITY = {"audio": 0, "screen": 1, "speaker": 2, "camera": 3}


@dataclass(frozen=True)
class Stream:
    """One forwarded track of one subscriber, as the allocator sees it.

    ``layer_rates``: bit/s of layers 0..k together (cumulative), for a layered video;
    empty otherwise, and ``rate`` is then what the whole stream costs.
    """

    key: int
    kind: str  # "audio", "screen", "speaker" (the active speaker's camera) or "camera"
    rate: float
    layer_rates: Sequence[float] = ()
    current: int = MAX_LAYER


def allocate(budget_bps: float | None, streams: Sequence[Stream]) -> dict[int, int]:
    """Target temporal layer per layered stream (``key`` -> 0..MAX_LAYER).

    No estimate yet (``None``): everything at the top layer. A layered camera whose base
    layer does not fit still gets the base layer (pausing it is not implemented yet).
    """
    targets: dict[int, int] = {}
    if budget_bps is None:
        return {s.key: MAX_LAYER for s in streams if s.layer_rates}
    left = float(budget_bps)
    for stream in sorted(streams, key=lambda s: PRIORITY.get(s.kind, 9)):
        if not stream.layer_rates:
            left -= stream.rate
            continue
        chosen = 0
        for layer, rate in enumerate(stream.layer_rates):
            need = rate * (UP_HEADROOM if layer > stream.current else 1.0)
            if need <= left:
                chosen = layer
        top = len(stream.layer_rates) - 1
        current = min(stream.current, top)
        if chosen == current < top and left >= stream.layer_rates[current] * PROBE_ROOM:
            chosen = current + 1
        targets[stream.key] = min(chosen, MAX_LAYER)
        left -= stream.layer_rates[chosen]
    return targets
