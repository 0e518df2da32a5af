"""control.jobs without a database: the loop survives a failed pass, Jobs stops its loops."""

from __future__ import annotations

import asyncio
import logging

import pytest

from control.jobs import Jobs, run_every


async def test_a_failed_pass_is_logged_and_the_next_runs(caplog: pytest.LogCaptureFixture) -> None:
    passes: list[int] = []

    async def job() -> None:
        passes.append(len(passes))
        if len(passes) == 1:
            raise RuntimeError("first pass breaks")

    with caplog.at_level(logging.ERROR, logger="control.jobs"):
        loop = asyncio.create_task(run_every(0.01, job, "testing"))
        for _ in range(200):
            if len(passes) >= 3:
                break
            await asyncio.sleep(0.01)
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop
    assert len(passes) >= 3
    assert "background pass failed: testing" in caplog.text


async def test_cancelling_stops_the_loop_at_once() -> None:
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(60)

    loop = asyncio.create_task(run_every(60, slow, "slow"))
    await started.wait()
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


async def test_jobs_names_running_loops_and_stops_them() -> None:
    jobs = Jobs()

    async def forever() -> None:
        await asyncio.sleep(3600)

    async def fails() -> None:
        raise RuntimeError("gone")

    jobs.spawn("forever", forever)
    jobs.spawn("fails", fails)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert jobs.running == ["forever"]
    await jobs.stop()  # neither the cancellation nor the failure escapes
    assert jobs.running == []
