"""``peerlearn serve --workers N``: a supervisor that runs N worker processes.

Each worker is a full node (``peerlearn serve`` again, told its index by
``PEERLEARN_CLUSTER__WORKER_INDEX``): it binds the shared HTTP port with ``SO_REUSEPORT``
(the kernel spreads connections), runs its own SFU on UDP ``[sfu] udp_port + index`` and
joins the cluster over Redis. The supervisor only starts, restarts and stops them: it
forwards SIGTERM/SIGINT (each worker drains, ``[cluster] drain_grace_s``) and restarts a
worker that died, as a new node. Metrics: the workers share one
``PROMETHEUS_MULTIPROC_DIR`` (a fresh folder unless the operator set one), so ``/metrics``
on any worker sums them all; a dead worker's live gauges are dropped (``mark_worker_dead``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from types import FrameType

from web.metrics import MULTIPROC_ENV

#: A worker that exits with an error this soon after starting refused to start.
STARTUP_FAILURE_S = 5.0
RESTART_DELAY_S = 1.0


def _start(index: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PEERLEARN_CLUSTER__WORKER_INDEX=str(index))
    return subprocess.Popen([sys.executable, "-m", "web.cli", *sys.argv[1:]], env=env)


def supervise(workers: int, grace_s: float) -> int:
    """Run ``workers`` workers until a signal; the exit status is 0 after a clean stop."""
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    procs: dict[int, subprocess.Popen[bytes]] = {}
    started: dict[int, float] = {}
    own_metrics_dir = None
    if not os.environ.get(MULTIPROC_ENV):
        # Before any worker (or this process) imports prometheus_client: an empty folder.
        own_metrics_dir = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="peerlearn-metrics-")
    from web.metrics import mark_worker_dead

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(workers):
        procs[index] = _start(index)
        started[index] = time.monotonic()
    status = 0
    while not stopping:
        time.sleep(0.2)
        for index, proc in list(procs.items()):
            code = proc.poll()
            if code is None or stopping:
                continue
            if code > 0 and time.monotonic() - started[index] < STARTUP_FAILURE_S:
                # It refused to start and said why on stderr (e.g. the port is taken): a
                # restart would only fail again, so stop the others too. (A kill is < 0.)
                status = code or 2
                stop(signal.SIGTERM, None)
                break
            mark_worker_dead(proc.pid)
            print(f"peerlearn: worker {index} exited ({code}); restarting", file=sys.stderr)
            time.sleep(RESTART_DELAY_S)
            procs[index] = _start(index)
            started[index] = time.monotonic()
    deadline = time.monotonic() + grace_s + 5.0
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if own_metrics_dir is not None:
        shutil.rmtree(own_metrics_dir, ignore_errors=True)
    return status
