"""ICE consent freshness (RFC 7675) that a busy event loop does not break.

aioice sends a consent check every 4-6 s as a single 0.5 s STUN transaction (no
retransmission) and closes the connection after six failures in a row. A response that is
merely *late* -- the remote's or this node's event loop busy for half a second, as on a
loaded 2-core machine -- counts as a failure, so a busy node drops every connection at
once ("Consent to send expired" on all of them within a second, seen in the ten-person
browser test). Browsers do better, and so does this: each check is retransmitted with
RFC 8489 timing, and consent expires only when no check has succeeded for ``EXPIRY_S``
(30 s, the RFC's consent timeout), i.e. on real silence.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from aioice import stun

from . import taps

logger = logging.getLogger(__name__)

INTERVAL_S = 5.0  # RFC 7675 section 5.1: a check every 4-6 s
EXPIRY_S = 30.0  # consent expires after 30 s without a successful check
RETRANSMISSIONS = 3  # 0.5 + 1 + 2 + 4 s: a check may be answered up to ~7.5 s late


def install(connection: Any) -> None:
    """Replace aioice's consent loop of ``connection`` (before ``connect()`` starts it)."""

    async def query_consent() -> None:
        loop = asyncio.get_running_loop()
        last_ok = loop.time()
        while True:
            await asyncio.sleep(INTERVAL_S * (0.8 + 0.4 * random.random()))
            for pair in taps.ice_nominated_pairs(connection):
                try:
                    await pair.protocol.request(
                        taps.ice_consent_request(connection, pair),
                        pair.remote_addr,
                        integrity_key=taps.ice_remote_password(connection),
                        retransmissions=RETRANSMISSIONS,
                    )
                    last_ok = loop.time()
                except stun.TransactionError:
                    pass
            if loop.time() - last_ok >= EXPIRY_S:
                logger.info("ICE consent expired: no check answered for %.0f s", EXPIRY_S)
                taps.ice_forget_consent_task(connection)  # close() must not cancel us
                await connection.close()
                return

    taps.ice_replace_consent(connection, query_consent)
