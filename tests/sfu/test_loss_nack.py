"""Retransmission policy (peerlearn_sfu/nack.py): the send leg's NACK limiter and the
receive leg's gap tracker, on a fake clock; then the limiter on a real subscriber leg."""

from __future__ import annotations

import asyncio

import pytest

from peerlearn_sfu import taps
from peerlearn_sfu.nack import GapTracker, NackLimiter
from tests.sfu import loss
from tests.sfu.progress import full_room, more_frames, wait_progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_packet_is_resent_a_few_times_at_most():
    clock = FakeClock()
    limiter = NackLimiter(max_resends=3, min_interval_s=0.02, clock=clock)
    answers = []
    for _ in range(10):
        answers.append(limiter.allow(1, 500))
        clock.now += 0.05
    assert answers == [True] * 3 + [False] * 7
    assert limiter.allow(2, 500), "another sender's packet 500 is another packet"
    assert limiter.counters.sent == 4 and limiter.counters.refused_repeat == 7


def test_a_repeat_within_the_min_interval_is_not_resent():
    clock = FakeClock()
    limiter = NackLimiter(min_interval_s=0.02, clock=clock)
    assert limiter.allow(1, 7)
    clock.now += 0.005
    assert not limiter.allow(1, 7)
    clock.now += 0.02
    assert limiter.allow(1, 7)


def test_the_leg_has_one_budget_that_refills():
    clock = FakeClock()
    limiter = NackLimiter(rate_per_s=100, burst=50, clock=clock)
    allowed = sum(limiter.allow(s, seq) for s in (1, 2) for seq in range(100))
    assert allowed == 50
    assert limiter.counters.refused_rate == 150
    clock.now += 0.25  # 25 tokens back
    assert sum(limiter.allow(3, seq) for seq in range(100)) == 25


def test_counts_are_forgotten_once_out_of_the_history():
    clock = FakeClock()
    limiter = NackLimiter(
        max_resends=1, min_interval_s=0, rate_per_s=1e9, burst=1e9, history=128, clock=clock
    )
    assert limiter.allow(1, 0)
    assert not limiter.allow(1, 0)
    for seq in range(1, 200):  # a sender's history holds 128 packets
        limiter.allow(1, seq)
    assert limiter.allow(1, 0), "a sequence number that wrapped around is a new packet"


def test_gap_tracker_renacks_then_gives_up():
    clock = FakeClock()
    tracker = GapTracker(renack_after_s=0.125, give_up_after_s=0.25, clock=clock)
    tracker.missing([10, 11])
    decision = tracker.check({10, 11})
    assert decision.renack == [] and decision.give_up == []
    assert decision.next_check_s == pytest.approx(0.125)
    clock.now += 0.125
    decision = tracker.check({10})  # 11 was repaired meanwhile
    assert decision.renack == [10] and tracker.repaired == 1
    assert decision.next_check_s == pytest.approx(0.125)
    clock.now += 0.125
    decision = tracker.check({10})
    assert decision.give_up == [10] and decision.next_check_s is None
    assert tracker.pending == 0 and tracker.given_up == 1


def test_gap_tracker_rejects_inverted_timings():
    with pytest.raises(ValueError):
        GapTracker(renack_after_s=0.3, give_up_after_s=0.2)


async def test_a_subscriber_nacking_in_a_loop_gets_a_packet_three_times(make_client, server):
    _alice, bob = await full_room(make_client, 2)
    shim = loss.LossShim()
    shim.attach_downlink(bob.subscribe_pc, lambda: bob.track_map)
    resent: list[loss.RtpInfo] = []

    def record(p: loss.RtpInfo) -> bool:
        if p.rtx:
            resent.append(p)
        return False  # observe only

    shim.drop_next(record)
    await more_frames([bob], 1, "camera", 5)
    receiver = next(
        t.receiver
        for t in bob.subscribe_pc.getTransceivers()
        if bob.track_map.get(t.mid) == (1, "camera")
    )
    ssrc = taps.receiver_media_ssrc(receiver)
    stream = receiver._RTCRtpReceiver__remote_streams[ssrc]
    seq = stream.max_seq
    for _ in range(50):  # a naive client NACKing the same packet again and again
        await taps.send_nack(receiver, ssrc, [seq])
        await asyncio.sleep(0.03)
    leg = server.get_room("room").participants[2].subscribe
    await wait_progress(
        lambda: leg.nack.counters.requested >= 50, lambda: len(resent), "the NACKs to arrive"
    )
    await asyncio.sleep(0.2)
    again = [p for p in resent if p.osn == seq]
    assert 1 <= len(again) <= 3, f"packet {seq} resent {len(again)} times for 50 NACKs"
    assert leg.nack.counters.refused_repeat >= 47
