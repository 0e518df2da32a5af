"""Admission quotas that span rooms (a room enforces its own cap in :meth:`Room.join`).

One booked learner or self-registered mentor must not be able to take a server's capacity:
``SfuConfig.max_participants_per_server`` bounds everyone on this node, and
``SfuConfig.max_rooms_per_user`` how many rooms one user is in at once (a second socket in
the *same* room replaces the first, so it does not count).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ServerFull, TooManyRooms

if TYPE_CHECKING:
    from .sfu import SfuServer


def check_admission(sfu: SfuServer, room_id: str, user_id: int) -> None:
    """Raise :class:`ServerFull` or :class:`TooManyRooms` before ``Room.join``."""
    config = sfu.config
    elsewhere = 0
    total = 0
    for rid, room in sfu.rooms.items():
        if room.closed:
            continue
        total += len(room.participants)
        if rid != room_id and user_id in room.participants:
            elsewhere += 1
    if elsewhere >= config.max_rooms_per_user:
        raise TooManyRooms(
            f"you are already in {elsewhere} other rooms (at most {config.max_rooms_per_user})"
        )
    current = sfu.rooms.get(room_id)
    rejoining = current is not None and user_id in current.participants
    if not rejoining and total >= config.max_participants_per_server:
        raise ServerFull(
            f"this server is at its limit of {config.max_participants_per_server} participants"
        )
