"""Case 1, CPU per poll: one poller per process, charged its own process CPU.

Three pollers make the same polls of the same records at the same rate and the
same concurrency, so only the cost per poll differs:

- `daemon`: the monitor itself (scheduler, client, pydantic validation, tracker,
  watchlist, aggregate metrics, transition logs), with no HTTP server.
- `bare`: an aiohttp loop doing the GET and `json.loads`, nothing else: the floor
  for Python. Each poll starts at its own time, as the simplest loop does. With
  `--grid` (reported as `bare_grid`), start times are rounded up to the same grid as
  the daemon's dispatcher, so it shares wake-ups the way the daemon does.
- `sdk`: the official `huaweicloudsdkcodeartsbuild` client from a thread pool,
  which is what a user would write instead. It signs every request with AK/SK;
  the simulator runs in its benchmark-only mode that accepts any signature.

Usage (one measurement, prints one JSON line):
    python -m benchmarks.cpu_poll POLLER --url URL --records-file PATH --rate R ...
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import anyio

from benchmarks.common import (
    BENCH_TOKEN,
    DEVNULL,
    bench_settings,
    emit,
    process_cpu_split,
    sleep_until,
)

POLLERS = ("daemon", "bare", "sdk")


class Pacer:
    """Hands out poll slots at `rate` per second from one shared schedule (thread-safe).

    With a `grid`, each slot's time is rounded up to the grid, as the daemon's
    dispatcher does, so polls due close together start in one wake-up.
    """

    def __init__(self, rate: float, start: float, grid: float = 0.0) -> None:
        self._period = 1.0 / rate
        self._start = start
        self._grid = grid
        self._slots = itertools.count()
        self._lock = threading.Lock()

    def next_slot(self) -> tuple[int, float]:
        with self._lock:
            k = next(self._slots)
        at = self._start + k * self._period
        if self._grid > 0:
            at = math.ceil(at / self._grid) * self._grid
        return k, at


class Window:
    """CPU (user and system), polls and wall time between `start()` and `stop()`."""

    def __init__(self, polls: Callable[[], int]) -> None:
        self._polls = polls
        self._start = (0.0, 0.0, 0, 0.0)
        self.user = self.system = self.wall = 0.0
        self.polls = 0

    def start(self) -> None:
        self._start = (*process_cpu_split(), self._polls(), time.monotonic())

    def stop(self) -> None:
        user, system = process_cpu_split()
        self.user = user - self._start[0]
        self.system = system - self._start[1]
        self.polls = self._polls() - self._start[2]
        self.wall = time.monotonic() - self._start[3]


def _result(poller: str, w: Window, errors: int) -> dict[str, Any]:
    cpu = w.user + w.system
    polls, wall = w.polls, w.wall
    return {
        "poller": poller,
        "cpu_seconds": cpu,
        "user_seconds": w.user,
        "system_seconds": w.system,
        "polls": polls,
        "wall_seconds": wall,
        "errors": errors,
        "cpu_per_poll_us": cpu / polls * 1e6 if polls else None,
        "polls_per_second": polls / wall if wall else None,
    }


# --- (a) the daemon -------------------------------------------------------------------


async def run_daemon(args: argparse.Namespace, records: list[str]) -> dict[str, Any]:
    from monitor.app import Daemon
    from monitor.logging import configure_logging

    configure_logging("json", "info", stream=DEVNULL)
    settings = bench_settings(
        args.url,
        records,
        poll_interval=len(records) / args.rate,
        max_concurrency=args.concurrency,
    )
    daemon = Daemon(settings, serve_http=False)

    def successes() -> int:
        v = daemon.metrics.registry.get_sample_value(
            "stage_monitor_polls_total", {"outcome": "success"}
        )
        return int(v or 0)

    def failures() -> int:
        return sum(r.consecutive_errors for r in daemon.watchlist.records.values())

    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        window = Window(successes)
        await anyio.sleep(args.warmup)
        window.start()
        await anyio.sleep(args.window)
        window.stop()
        tg.cancel_scope.cancel()
    return _result("daemon", window, failures())


# --- (b) a bare aiohttp loop ------------------------------------------------------------


async def run_bare(args: argparse.Namespace, records: list[str]) -> dict[str, Any]:
    counts = {"ok": 0, "errors": 0}
    pacer = Pacer(args.rate, time.monotonic(), args.grid)
    headers = {"X-Auth-Token": BENCH_TOKEN, "Accept": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        while True:
            k, due = pacer.next_slot()
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            rid = records[k % len(records)]
            async with session.get(f"{args.url}/v1/record/{rid}/full-stages") as resp:
                body = await resp.read()
                if resp.status == 200:
                    json.loads(body)
                    counts["ok"] += 1
                else:
                    counts["errors"] += 1

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=args.concurrency), headers=headers
    ) as session:
        tasks = [asyncio.create_task(worker(session)) for _ in range(args.concurrency)]
        window = Window(lambda: counts["ok"])
        await asyncio.sleep(args.warmup)
        window.start()
        await asyncio.sleep(args.window)
        window.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return _result("bare_grid" if args.grid else "bare", window, counts["errors"])


# --- (c) the official SDK from a thread pool --------------------------------------------


def sdk_client(url: str, pool_size: int = 10) -> Any:
    """The official client pointed at `url` (plain http on loopback is allowed).

    `with_endpoints` overrides the region's https endpoint; a project id in the
    credentials keeps the SDK from asking IAM for one (it would go to the Internet).
    The AK/SK are dummies: the simulator's benchmark mode does not check signatures.
    The connection pool is sized to the thread pool, as a careful user would (the
    default of 10 would drop and reopen connections with 16 threads, and charge
    the SDK for it).
    """
    from huaweicloudsdkcodeartsbuild.v3 import CodeArtsBuildClient
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig

    credentials = BasicCredentials(
        "BENCHMARKAK000000000", "BENCHMARKSK0000000000000000000000000000", "0" * 32
    )
    return (
        CodeArtsBuildClient.new_builder()
        .with_credentials(credentials)
        .with_endpoints([url])
        .with_http_config(HttpConfig(pool_connections=pool_size, pool_maxsize=pool_size))
        .build()
    )


def run_sdk(args: argparse.Namespace, records: list[str]) -> dict[str, Any]:
    from huaweicloudsdkcodeartsbuild.v3 import ShowBuildRecordFullStagesRequest

    client = sdk_client(args.url, args.concurrency)
    counts = {"ok": 0, "errors": 0}
    lock = threading.Lock()
    stop = threading.Event()
    pacer = Pacer(args.rate, time.monotonic())

    def worker() -> None:
        while not stop.is_set():
            k, due = pacer.next_slot()
            sleep_until(due)
            rid = records[k % len(records)]
            try:
                resp = client.show_build_record_full_stages(
                    ShowBuildRecordFullStagesRequest(record_id=rid)
                )
                ok = resp.result is not None
            except Exception:
                ok = False
            with lock:
                counts["ok" if ok else "errors"] += 1

    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        futures = [pool.submit(worker) for _ in range(args.concurrency)]
        window = Window(lambda: counts["ok"])
        time.sleep(args.warmup)
        window.start()
        time.sleep(args.window)
        window.stop()
        stop.set()
        for f in futures:
            f.result()
    return _result("sdk", window, counts["errors"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("poller", choices=POLLERS)
    p.add_argument("--url", required=True)
    p.add_argument("--records-file", required=True)
    p.add_argument("--rate", type=float, default=200.0, help="polls per second")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--warmup", type=float, default=1.5)
    p.add_argument("--grid", type=float, default=0.0, help="bare: round slots up to this grid")
    p.add_argument("--window", type=float, default=5.0)
    args = p.parse_args()
    with open(args.records_file, encoding="utf-8") as fh:
        records: list[str] = json.load(fh)
    if args.poller == "daemon":
        emit(anyio.run(run_daemon, args, records))
    elif args.poller == "bare":
        emit(asyncio.run(run_bare(args, records)))
    else:
        emit(run_sdk(args, records))


if __name__ == "__main__":
    main()
