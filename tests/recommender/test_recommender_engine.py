"""The engine: real-time recording, background refits off the event loop, atomic swaps."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from recommender.data import Interaction, RecommenderWeights, Snapshot
from recommender.engine import Engine
from recommender.hybrid import FittedModel, Recommender, fit_model
from tests.recommender.support import BLANK, BOB, DESIGNER, NOW, PY_LOVER, event, session

FAST = RecommenderWeights(refit_after_interactions=3, refit_interval_s=3600)
TIMEOUT = 10


class GatedFitter:
    """A fitter that notes its thread and, once closed, blocks until the test opens it."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.threads: list[str] = []
        self.calls = 0
        self.fail_next = False

    def __call__(self, snapshot: Snapshot, weights: RecommenderWeights) -> FittedModel:
        self.calls += 1
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        assert self.gate.wait(TIMEOUT), "the test never released the fit"
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("fit exploded")
        return fit_model(snapshot, weights)


async def _engine(loader: Callable[[], Snapshot], fitter: GatedFitter) -> Engine:
    engine = Engine(loader, FAST, fitter=fitter, min_refit_gap_s=0)
    await asyncio.wait_for(engine.start(wait=True), TIMEOUT)
    assert engine.version == 1
    return engine


async def test_refit_after_n_interactions_runs_off_the_loop_and_swaps_atomically(
    snapshot: Snapshot,
) -> None:
    fitter = GatedFitter()
    engine = await _engine(lambda: snapshot, fitter)
    try:
        first = engine.model
        fitter.gate.clear()
        fitter.entered.clear()
        for _ in range(FAST.refit_after_interactions):  # N interactions wake the refit loop
            engine.record(event(BLANK, "guitar", 102, "view", 0))
        assert await asyncio.to_thread(fitter.entered.wait, TIMEOUT)

        # The fit is blocked in its thread; the loop still answers, from the old model
        # (plus what was recorded since: the three views already count for popularity).
        assert engine.model is first and engine.version == 1
        assert engine.trending(now=NOW)[0].id == "guitar"
        assert engine.recommend_sessions(DESIGNER, now=NOW)[0].id == "figma"
        # A booking recorded mid-fit applies now and is replayed onto the new model.
        engine.record(event(DESIGNER, "figma", BOB, "booking", 0))
        assert "figma" not in [r.id for r in engine.recommend_sessions(DESIGNER, now=NOW)]

        fitter.gate.set()
        await asyncio.wait_for(engine.wait_for_version(2), TIMEOUT)
        assert engine.model is not first
        assert "figma" not in [r.id for r in engine.recommend_sessions(DESIGNER, now=NOW)]
        assert all(name.startswith("recommender-fit") for name in fitter.threads)
        assert threading.current_thread().name not in fitter.threads
    finally:
        fitter.gate.set()
        await engine.stop()


async def test_failed_refit_keeps_serving_the_previous_model(snapshot: Snapshot) -> None:
    fitter = GatedFitter()
    engine = await _engine(lambda: snapshot, fitter)
    try:
        first = engine.model
        fitter.fail_next = True
        with pytest.raises(RuntimeError):
            await engine.refresh_now()
        assert engine.model is first and engine.version == 1
        assert engine.recommend_sessions(PY_LOVER, now=NOW)
    finally:
        await engine.stop()


async def test_events_recorded_during_a_slow_load_are_counted_once(snapshot: Snapshot) -> None:
    booking = event(DESIGNER, "figma", BOB, "booking", 0)
    loading = asyncio.Event()
    release = asyncio.Event()
    snapshots = [
        snapshot,
        Snapshot(
            snapshot.users, snapshot.sessions, snapshot.mentors, [*snapshot.interactions, booking]
        ),
    ]

    async def loader() -> Snapshot:
        current = snapshots.pop(0)
        if not snapshots:  # the second load: pause so the test can record meanwhile
            loading.set()
            await release.wait()
        return current

    engine = Engine(loader, FAST, min_refit_gap_s=0)
    await asyncio.wait_for(engine.start(wait=True), TIMEOUT)
    try:
        refit = asyncio.create_task(engine.refresh_now())
        await asyncio.wait_for(loading.wait(), TIMEOUT)
        engine.record(booking)  # committed while the export ran: the snapshot holds it too
        release.set()
        await asyncio.wait_for(refit, TIMEOUT)
        expected = Recommender(fit_model(snapshots_final(snapshot, booking)), FAST)
        got = {r.id: r.score for r in engine.trending(now=NOW)}
        want = {r.id: r.score for r in expected.trending(now=NOW)}
        assert got == pytest.approx(want)
    finally:
        await engine.stop()


def snapshots_final(snapshot: Snapshot, *extra: Interaction) -> Snapshot:
    return Snapshot(
        snapshot.users, snapshot.sessions, snapshot.mentors, [*snapshot.interactions, *extra]
    )


async def test_an_unknown_session_triggers_a_refit(snapshot: Snapshot) -> None:
    published = Snapshot(
        snapshot.users,
        [*snapshot.sessions, session("brand-new", BOB, "Figma again", ("Figma",))],
        snapshot.mentors,
        snapshot.interactions,
    )
    snapshots = [snapshot, published]
    engine = Engine(lambda: snapshots[min(engine.version, 1)], FAST, min_refit_gap_s=0)
    await asyncio.wait_for(engine.start(wait=True), TIMEOUT)
    try:
        assert "brand-new" not in [r.id for r in engine.recommend_sessions(DESIGNER, now=NOW)]
        engine.record(event(BLANK, "brand-new", BOB, "view", 0))  # one event is enough
        await asyncio.wait_for(engine.wait_for_version(2), TIMEOUT)
        assert "brand-new" in [r.id for r in engine.recommend_sessions(DESIGNER, now=NOW)]
    finally:
        await engine.stop()


async def test_requests_before_the_first_fit_are_empty_not_blocked(snapshot: Snapshot) -> None:
    fitter = GatedFitter()
    fitter.gate.clear()
    engine = Engine(lambda: snapshot, FAST, fitter=fitter, min_refit_gap_s=0)
    await engine.start()
    try:
        assert await asyncio.to_thread(fitter.entered.wait, TIMEOUT)
        assert engine.recommend_sessions(PY_LOVER, now=NOW) == []
        assert engine.trending(now=NOW) == [] and not engine.ready
        fitter.gate.set()
        await asyncio.wait_for(engine.wait_for_version(1), TIMEOUT)
        assert engine.recommend_sessions(PY_LOVER, now=NOW)
    finally:
        fitter.gate.set()
        await engine.stop()
