"""``peerlearn loadtest``: its arguments, and the table it prints."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import asdict
from typing import Any

from web.loadtest.runner import LoadTestError, Options, Result, parse_account, run


def _account(value: str) -> Any:
    try:
        return parse_account(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the server's base URL, e.g. https://learn.example.org")
    parser.add_argument("-r", "--rooms", type=int, default=1, help="rooms (default 1)")
    parser.add_argument(
        "-n", "--participants", type=int, default=3, help="participants per room, mentor included"
    )
    parser.add_argument("-s", "--seconds", type=float, default=10.0, help="media window (s)")
    parser.add_argument(
        "--mentor",
        type=_account,
        action="append",
        default=[],
        metavar="USER:PASSWORD",
        help="an existing mentor login (repeat; rooms take them in turn); default: register",
    )
    parser.add_argument(
        "--learner",
        type=_account,
        action="append",
        default=[],
        metavar="USER:PASSWORD",
        help="an existing learner login (repeat; every room needs N-1); default: register",
    )
    parser.add_argument(
        "--admin-token",
        help="an admin's token: the test users this run registers are deactivated afterwards",
    )
    parser.add_argument(
        "--admin", type=_account, metavar="USER:PASSWORD", help="an admin login, for its token"
    )
    parser.add_argument("--server-pid", type=int, help="the server's pid (CPU, workers included)")
    parser.add_argument("--join-timeout", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument(
        "--interface",
        action="append",
        default=[],
        help="bind the participants' media to this local address (repeat; default: all)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def rows(result: Result) -> list[tuple[str, str]]:
    """The table's lines, metric → value."""
    frames = f"{result.frames_received} / {result.frames_expected}"
    cpu = result.server_cpu_percent
    out = [
        ("rooms × participants", f"{result.rooms} × {result.participants // max(1, result.rooms)}"),
        ("media window", f"{result.seconds:g} s"),
        ("join → all video p50", _seconds(result.join_p50_s)),
        ("join → all video p95", _seconds(result.join_p95_s)),
        ("video frames received / expected", frames),
        ("loss", f"{result.loss * 100:.2f} %"),
        ("NACKs (sequence numbers)", str(result.nacks)),
        ("failures", str(result.failures)),
        ("server CPU", "-" if cpu is None else f"{cpu:.0f} % of a core"),
    ]
    return out


def print_table(result: Result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="peerlearn loadtest")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for metric, value in rows(result):
        table.add_row(metric, value)
    console = Console()
    console.print(table)
    for reason in result.failure_reasons:
        console.print(f"failure: {reason}", markup=False)


def main(args: argparse.Namespace) -> int:
    if not args.verbose:
        # One line per ICE check and DTLS state of every participant would bury the bar.
        for name in ("aioice", "aiortc"):
            logging.getLogger(name).setLevel(logging.WARNING)
    options = Options(
        url=args.url,
        rooms=args.rooms,
        participants=args.participants,
        seconds=args.seconds,
        mentors=args.mentor,
        learners=args.learner,
        admin_token=args.admin_token,
        admin=args.admin,
        server_pid=args.server_pid,
        join_timeout_s=args.join_timeout,
        interfaces=tuple(args.interface),
        progress=not args.no_progress and not args.json,
    )
    try:
        result = asyncio.run(run(options))
    except LoadTestError as exc:
        print(f"peerlearn: loadtest: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**asdict(result), "loss": result.loss}))
    else:
        print_table(result)
    return 1 if result.failures else 0
