"""Several worker processes share one PROMETHEUS_MULTIPROC_DIR: whichever answers a scrape
reports the sum of all of them (real processes: prometheus-client reads the variable at
import, so each runs in its own interpreter)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]

_WORKER = """
import sys
from web.metrics import SfuExporter, read_sfu

rooms = int(sys.argv[1])
stats = {"rooms": {f"r{i}": {"participants": {1: {"publish": {"camera": {"packets_in": 100}},
         "subscribe": []}}} for i in range(rooms)}}
SfuExporter().export(read_sfu(stats))
print("exported", flush=True)
"""

_SCRAPE = """
import sys
from prometheus_client import generate_latest
from web.metrics import mark_worker_dead, metrics_registry

for pid in sys.argv[1:]:
    mark_worker_dead(int(pid))
sys.stdout.write(generate_latest(metrics_registry()).decode())
"""


async def _run(script: str, *args: str, folder: Path) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, *args, env=env, stdout=subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return proc.pid, out.decode()


def _values(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels or sample.labels.get("direction") == "incoming"
    }


@pytest.mark.slow
async def test_the_scrape_sums_every_worker_and_forgets_a_dead_ones_gauges(
    tmp_path: Path,
) -> None:
    one, _ = await _run(_WORKER, "1", folder=tmp_path)
    _two, _ = await _run(_WORKER, "2", folder=tmp_path)
    _, text = await _run(_SCRAPE, folder=tmp_path)
    values = _values(text)
    # The workers exited without being marked dead, as if alive: their rooms add up.
    assert values["peerlearn_room_total"] == 3
    assert values["peerlearn_participant_total"] == 3
    assert values["peerlearn_packet_total"] == 300
    _, text = await _run(_SCRAPE, str(one), folder=tmp_path)
    values = _values(text)
    assert values["peerlearn_room_total"] == 2  # the dead worker's rooms are gone ...
    assert values["peerlearn_packet_total"] == 300  # ... what it forwarded still counts
