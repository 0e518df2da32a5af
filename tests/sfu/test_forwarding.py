"""Frame-level forwarding: byte-identical, and no decoder/encoder is ever created."""

from __future__ import annotations

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pytest


@pytest.fixture
def codec_factory_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real_decoder = aiortc.rtcrtpreceiver.get_decoder
    real_encoder = aiortc.rtcrtpsender.get_encoder

    def get_decoder(codec):  # type: ignore[no-untyped-def]
        calls.append(f"decoder:{codec.mimeType}")
        return real_decoder(codec)

    def get_encoder(codec):  # type: ignore[no-untyped-def]
        calls.append(f"encoder:{codec.mimeType}")
        return real_encoder(codec)

    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", get_decoder)
    monkeypatch.setattr(aiortc.rtcrtpsender, "get_encoder", get_encoder)
    return calls


async def test_frames_are_forwarded_byte_identical(make_client, codec_factory_calls):
    alice = await make_client(1).join()
    bob = await make_client(2).join()
    await alice.publish()
    await bob.publish()
    alice.video.record = bob.video.record = True
    alice.audio.record = True

    await bob.wait_for(lambda: len(bob.frames_from(1, "camera")) >= 30, timeout=10)
    await bob.wait_for(lambda: len(bob.frames_from(1, "audio")) >= 50, timeout=5)
    await alice.wait_for(lambda: len(alice.frames_from(2, "camera")) >= 30, timeout=10)

    sent_video = set(alice.video.sent)
    got_video = [data for _, data, _ in bob.frames_from(1, "camera")]
    assert got_video[0] in sent_video and is_key(got_video[0])
    # Every frame the subscriber got is exactly one the publisher sent.
    assert all(data in sent_video for data in got_video)
    sent_audio = set(alice.audio.sent)
    got_audio = [data for _, data, _ in bob.frames_from(1, "audio")]
    assert sum(data in sent_audio for data in got_audio) >= len(got_audio) - 1
    # Nothing in this process (server or clients) asked aiortc for a codec.
    assert codec_factory_calls == []


def is_key(data: bytes) -> bool:
    return not (data[0] & 1)
