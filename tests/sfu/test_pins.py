"""The private-attribute taps are written for aiortc 1.16.x / aioice 0.13.x: fail loudly."""

from __future__ import annotations

import aioice
import aiortc

from peerlearn_sfu import ice, taps


def test_aiortc_version_and_private_attributes_are_pinned():
    assert aiortc.__version__.startswith("1.16."), (
        f"aiortc {aiortc.__version__}: peerlearn_sfu/taps.py was written for 1.16.x; "
        "re-verify RTCRtpReceiver/RTCRtpSender internals and update the pin"
    )
    taps.check_aiortc_version()  # raises on any missing private attribute


def test_aioice_version_is_pinned():
    assert aioice.__version__.startswith("0.13."), (
        f"aioice {aioice.__version__}: peerlearn_sfu/ice.py was written for 0.13.x"
    )
    ice.check_aioice_version()


async def test_receiver_instance_has_the_tapped_fields():
    # Name-mangled fields only exist on instances: check a real receiver/sender pair.
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    transceiver = pc.addTransceiver("video")
    receiver, sender = transceiver.receiver, transceiver.sender
    for name in taps.RECEIVER_PRIVATE:
        assert hasattr(receiver, f"_RTCRtpReceiver__{name}"), name
    for name in taps.SENDER_PRIVATE:
        assert hasattr(sender, f"_RTCRtpSender__{name}"), name
    await pc.close()
