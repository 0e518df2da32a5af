"""The private-attribute taps are written for aiortc 1.16.x / aioice 0.13.x: fail loudly."""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
import re
from collections.abc import Iterator

import aioice
import aiortc
import pytest
from aioice import ice as aioice_ice
from aiortc.rtcrtpsender import RTCRtpSender

from peerlearn_sfu import taps

PACKAGE = pathlib.Path(taps.__file__).parent


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
    taps.check_aioice_version()


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
    for cls, names in taps.AIORTC_FIELDS:
        if cls is RTCRtpSender:
            for name in names:
                assert hasattr(sender, name), name
    assert hasattr(pc, "_RTCPeerConnection__iceTransports")
    (connection,) = taps.ice_connections(pc)
    for name in taps.AIOICE_CONNECTION_FIELDS:
        assert hasattr(connection, name), name
    await pc.close()


# -- the pins catch a missing attribute ----------------------------------------------------


class _Pinned:
    def __init__(self) -> None:
        self._here = 1
        self._typed: int | None = None
        self.__mangled = 2
        if self._here == 1:  # a comparison is not an assignment
            pass

    def _uses(self) -> bool:
        return self._compared_only == 0  # type: ignore[attr-defined]  # never assigned


@pytest.mark.parametrize(
    ("names", "prefix", "missing"),
    [
        (("_here", "_typed"), "", None),
        (("mangled",), "__", None),
        (("_here", "_gone"), "", "_Pinned._gone is gone"),
        (("_compared_only",), "", "_Pinned._compared_only is gone"),
        (("gone",), "__", "_Pinned.__gone is gone"),
    ],
)
def test_check_fields_requires_an_assignment_in_the_class(names, prefix, missing):
    if missing is None:
        taps.check_fields(_Pinned, names, prefix=prefix)
    else:
        with pytest.raises(RuntimeError, match=re.escape(missing)):
            taps.check_fields(_Pinned, names, prefix=prefix)


@pytest.mark.parametrize(
    ("table", "extra", "check", "message"),
    [
        ("RECEIVER_PRIVATE", "gone", taps.check_aiortc_version, "RTCRtpReceiver.__gone"),
        ("SENDER_PRIVATE", "gone", taps.check_aiortc_version, "RTCRtpSender.__gone"),
        (
            "AIORTC_FIELDS",
            (RTCRtpSender, ("_gone",)),
            taps.check_aiortc_version,
            "RTCRtpSender._gone",
        ),
        ("PRIVATE_METHODS", (RTCRtpSender, "_gone"), taps.check_aiortc_version, "_gone"),
        (
            "HANDOVER_SOURCE_LINES",
            (RTCRtpSender, "self.__encoder.gone(data)"),
            taps.check_aiortc_version,
            "self.__encoder.gone(data)",
        ),
        ("AIOICE_CONNECTION_FIELDS", "_gone", taps.check_aioice_version, "Connection._gone"),
        (
            "AIOICE_CONNECTION_SOURCE",
            "self._gone = True",
            taps.check_aioice_version,
            "self._gone",
        ),
    ],
)
def test_a_missing_private_attribute_fails_the_pin(monkeypatch, table, extra, check, message):
    monkeypatch.setattr(taps, table, (*getattr(taps, table), extra))
    with pytest.raises(RuntimeError, match=re.escape(message)):
        check()


# -- every private name used is in taps.py, and pinned there ------------------------------


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _mangled(cls: type, name: str) -> str:
    return f"_{cls.__name__}{name}" if name.startswith("__") else name


def _pinned_names() -> set[str]:
    names = {_mangled(cls, n) for cls, fields in taps.AIORTC_FIELDS for n in fields}
    names |= {f"_RTCRtpReceiver__{n}" for n in taps.RECEIVER_PRIVATE}
    names |= {f"_RTCRtpSender__{n}" for n in taps.SENDER_PRIVATE}
    names |= set(taps.AIOICE_CONNECTION_FIELDS) | set(taps.JITTER_FIELDS)
    names |= {method for _, method in taps.PRIVATE_METHODS}
    names |= set(taps.AIOICE_CONNECTION_API)  # replaced per instance: query_consent, ...
    # attributes a pinned source line names (``packet._data = ...``)
    for _, line in (*taps.HANDOVER_SOURCE_LINES, *taps.RTX_SOURCE_LINES):
        names |= {n for n in _attribute_names(line) if _private(n)}
    return names


def _attribute_names(line: str) -> set[str]:
    return set(re.findall(r"\.(\w+)", line))


def _foreign_private_uses(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """``x._name`` with ``x`` not ``self``/``cls``, and mangled names built as f-strings."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            yield node.lineno, node.attr
        elif isinstance(node, ast.JoinedStr) and len(node.values) == 2:
            prefix, rest = node.values
            if isinstance(prefix, ast.FormattedValue) and isinstance(prefix.value, ast.Name):
                mangling = {"_R": "_RTCRtpReceiver__", "_S": "_RTCRtpSender__"}
                if prefix.value.id in mangling and isinstance(rest, ast.Constant):
                    yield node.lineno, mangling[prefix.value.id] + rest.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "_replace_method"
        ):
            name = node.args[1]
            assert isinstance(name, ast.Constant), ast.unparse(node)
            yield node.lineno, name.value
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.startswith("_RTC") and "__" in node.value[1:-2]:
                yield node.lineno, node.value


def test_every_private_name_taps_uses_is_pinned():
    tree = ast.parse(inspect.getsource(taps))
    pinned = _pinned_names()
    unpinned = [
        (line, name)
        for line, name in _foreign_private_uses(tree)
        if name not in pinned and not name.startswith("_peerlearn")
    ]
    assert not unpinned, f"private aiortc/aioice names used in taps.py but not pinned: {unpinned}"


@pytest.mark.parametrize(
    "module",
    sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("taps", "__init__")),
)
def test_no_other_module_touches_a_private_attribute(module):
    mod = importlib.import_module(f"peerlearn_sfu.{module}")
    tree = ast.parse(inspect.getsource(mod))
    assert list(_foreign_private_uses(tree)) == [], f"use an accessor of taps.py in {module}.py"
    # getattr/setattr by name only for the SFU's own markers on aiortc/aioice objects
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
        ):
            name = node.args[1]
            value = getattr(mod, name.id) if isinstance(name, ast.Name) else ast.literal_eval(name)
            assert value.startswith("_peerlearn_"), (module, node.lineno, value)


def test_the_aioice_pins_list_only_what_is_used():
    source = inspect.getsource(taps)
    used = {name for _, name in _foreign_private_uses(ast.parse(source))}
    assert set(taps.AIOICE_CONNECTION_FIELDS) <= used
    assert all(hasattr(aioice_ice.Connection, m) for m in taps.AIOICE_CONNECTION_API)


# -- RTX section: aiortc still needs the patch, and the patch still fits aiortc ----------


class _FakeReceiver:
    """Just the fields of RTCRtpReceiver the RTX routing reads."""

    def __init__(self, media_ssrc: int | None, rtx: dict[int, int]) -> None:
        from aiortc.rtcrtpparameters import RTCRtpCodecParameters
        from aiortc.rtcrtpreceiver import NackGenerator

        self._RTCRtpReceiver__codecs = {
            96: RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96),
            97: RTCRtpCodecParameters(
                mimeType="video/rtx", clockRate=90000, payloadType=97, parameters={"apt": 96}
            ),
        }
        self._RTCRtpReceiver__rtx_ssrc = rtx
        self._RTCRtpReceiver__remote_streams = {media_ssrc: object()} if media_ssrc else {}
        self._RTCRtpReceiver__nack_generator = NackGenerator()


def _two_video_mlines() -> tuple[object, _FakeReceiver, _FakeReceiver]:
    from aiortc.rtcdtlstransport import RtpRouter

    router = RtpRouter()
    camera = _FakeReceiver(111, {222: 111})
    screen = _FakeReceiver(333, {444: 333})
    router.register_receiver(camera, ssrcs=[111], payload_types=[96, 97], mid="1")
    router.register_receiver(screen, ssrcs=[333], payload_types=[96, 97], mid="2")
    return router, camera, screen


def _rtx(ssrc: int, osn: int, mid: str | None = None) -> object:
    from aiortc.rtp import RtpPacket

    packet = RtpPacket(
        payload_type=97, sequence_number=9, ssrc=ssrc, payload=osn.to_bytes(2, "big") + b"vp8"
    )
    packet.extensions.mid = mid
    return packet


def test_aiortc_router_still_discards_rtx_of_two_video_mlines():
    # If this fails, aiortc routes RTX itself now: taps.install_rtx_routing can go.
    router, _, _ = _two_video_mlines()
    assert router.route_rtp(_rtx(222, 5)) is None


def test_rtx_is_routed_by_fid_then_mid_then_missing_packet():
    router, camera, screen = _two_video_mlines()
    taps._patch_router(router)
    assert router.route_rtp(_rtx(222, 5)) is camera  # a=ssrc-group:FID
    assert router.route_rtp(_rtx(444, 5)) is screen
    # No a=ssrc lines: the MID header extension, and the RTX SSRC is learned.
    screen._RTCRtpReceiver__rtx_ssrc.clear()
    assert router.route_rtp(_rtx(555, 5, mid="2")) is screen
    assert screen._RTCRtpReceiver__rtx_ssrc == {555: 333}
    # Neither: the receiver that is missing the repaired packet.
    camera._RTCRtpReceiver__nack_generator.missing.add(77)
    assert router.route_rtp(_rtx(666, 77)) is camera
    assert router.route_rtp(_rtx(888, 1234)) is None  # nobody misses it: aiortc's discard


def test_skip_gap_moves_the_jitter_buffer_past_a_lost_packet():
    from aiortc.jitterbuffer import JitterBuffer
    from aiortc.rtcrtpreceiver import NackGenerator
    from aiortc.rtp import RtpPacket

    class Receiver:
        pass

    receiver = Receiver()
    buffer = JitterBuffer(capacity=128, is_video=True)
    receiver._RTCRtpReceiver__jitter_buffer = buffer
    receiver._RTCRtpReceiver__nack_generator = generator = NackGenerator()

    def add(seq: int, ts: int) -> object:
        packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=ts)
        packet._data = bytes([seq])
        generator.add(packet)
        return buffer.add(packet)[1]

    assert add(10, 1) is None
    assert add(11, 2).data == b"\x0a"
    for seq in (13, 14, 15):  # 12 is lost; frames wait behind it
        assert add(seq, seq) is None
    assert generator.missing == {12}
    assert taps.skip_gap(receiver, 12)
    assert generator.missing == set()
    assert add(16, 16).data == b"\x0d"  # frames flow again from the one after the gap


def test_passthrough_audio_buffer_releases_each_packet_at_once():
    from aiortc.rtp import RtpPacket

    buffer = taps.PassThroughAudioBuffer()
    out = []
    for seq in (65534, 65535, 1, 0, 2):  # 0 is late (after 1): dropped, not waited for
        packet = RtpPacket(payload_type=111, sequence_number=seq, timestamp=seq * 960)
        packet._data = bytes([seq % 256])
        out.append(buffer.add(packet)[1])
    assert [f.data if f else None for f in out] == [b"\xfe", b"\xff", b"\x01", None, b"\x02"]
    assert buffer.late == 1
