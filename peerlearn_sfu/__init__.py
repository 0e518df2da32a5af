"""PeerLearn media plane: a forwarding SFU on aiortc (no transcoding).

The web layer opens rooms, admits authenticated users with :meth:`Room.join`, passes
every other signaling message to :meth:`Room.handle` and calls :meth:`Room.leave` on
disconnect. Nothing here speaks HTTP or touches a database.
"""

from .config import SfuConfig
from .errors import (
    Banned,
    PortRangeExhausted,
    RoomClosed,
    RoomFull,
    ServerFull,
    SfuError,
    TooManyRooms,
)
from .hooks import ParticipantIdentity, RoomHooks
from .participant import Participant
from .room import Room
from .sfu import SfuServer
from .turn import ice_servers_for, turn_credentials

__all__ = [
    "Banned",
    "Participant",
    "ParticipantIdentity",
    "PortRangeExhausted",
    "Room",
    "RoomClosed",
    "RoomFull",
    "RoomHooks",
    "ServerFull",
    "SfuConfig",
    "SfuError",
    "SfuServer",
    "TooManyRooms",
    "ice_servers_for",
    "turn_credentials",
]
