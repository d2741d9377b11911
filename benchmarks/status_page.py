"""Case 5, status page: the HTML at / over 2,000 active records, and polling while it loads.

Two parts, one JSON line:
- `render`: `StatusPage.index_html()` over a watchlist of N active records of 8 stages
  (each with its transitions and last poll in the history), at the default cap of
  200 rows and with every row shown; and one /records/{id} page.
- `polling`: a daemon in this process polling a simulator in another one, first left
  alone for a window, then for a window of the same length while a client in this
  process loads / back to back over HTTP. If the page blocked the event loop, polls
  per second would drop and the scheduler's delays (due time to start) would grow.

Usage (prints one JSON line):
    python -m benchmarks.status_page --records 2000 --repeat 15 --url URL --records-file PATH
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from dataclasses import replace
from typing import Any

import aiohttp
import anyio

from benchmarks.common import DEVNULL, bench_settings, emit, median, percentile
from benchmarks.scrape import T0, make_snapshot
from monitor.app import Daemon
from monitor.codearts.ratelimit import TokenBucket
from monitor.logging import configure_logging
from monitor.server.status import StatusPage, TransitionHistory
from monitor.settings import DEFAULT_TERMINAL_STATUSES
from monitor.store.memory import MemoryStore
from monitor.tracking.tracker import PollDone, observe
from monitor.tracking.watchlist import WatchedRecord, Watchlist

TERMINAL = frozenset(DEFAULT_TERMINAL_STATUSES)


def status_page(n: int, rows: int) -> tuple[StatusPage, Watchlist]:
    watchlist = Watchlist(MemoryStore(), terminal_statuses=TERMINAL)
    history = TransitionHistory(clock=lambda: T0)
    for i in range(n):
        snap = make_snapshot(i % 8)  # never complete: every record is active
        snap = replace(snap, record_id=f"{i:08x}-0000-4000-8000-{i:012x}")
        rec = WatchedRecord(record_id=snap.record_id, added_at=T0, labels={"job_name": f"job-{i}"})
        rec.snapshot = snap
        watchlist.records[rec.record_id] = rec
        for t in observe(None, snap, frozenset(), TERMINAL).transitions:
            history.on_event(t)
        history.on_event(PollDone(rec.record_id, "success"))
    page = StatusPage(
        watchlist,
        history,
        version="bench",
        auth_mode="token",
        budget=TokenBucket(5.0, 10),
        retention=900.0,
        rows=rows,
        clock=lambda: T0 + 120,
    )
    return page, watchlist


def time_calls(fn: Any, repeat: int, before: Any = None) -> tuple[list[float], int, list[float]]:
    """Wall-clock and CPU seconds of each call (the machine may be shared), and the size."""
    times = []
    cpu = []
    size = 0
    gc.collect()
    for _ in range(repeat):
        if before is not None:
            before()
        c, t = time.process_time(), time.perf_counter()
        size = len(fn())
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return times, size, cpu


def render_part(n: int, repeat: int) -> dict[str, Any]:
    """Two timings per size: `changed` (every record's snapshot moved since the last load, so
    no row's timeline is cached: the worst case) and `unchanged` (loaded twice in a row)."""
    out: dict[str, Any] = {"records": n}
    for label, rows in (("capped", 200), ("all", n)):
        page, watchlist = status_page(n, rows)

        def change_all(watchlist: Watchlist = watchlist) -> None:
            for rec in watchlist.records.values():
                rec.version += 1

        changed, size, changed_cpu = time_calls(page.index_html, repeat, change_all)
        unchanged, _, _ = time_calls(page.index_html, repeat)
        out[label] = {
            "rows": min(rows, n),
            "changed_median_seconds": median(changed),
            "changed_max_seconds": max(changed),
            "changed_cpu_median_seconds": median(changed_cpu),
            "unchanged_median_seconds": median(unchanged),
            "body_bytes": size,
        }
    page, watchlist = status_page(n, 200)
    rec = next(iter(watchlist.records.values()))
    times, size, _ = time_calls(lambda: page.record_html(rec), repeat)
    out["record_page"] = {"median_seconds": median(times), "body_bytes": size}
    return out


async def polling_part(url: str, records: list[str], interval: float, window: float) -> Any:
    configure_logging("json", "info", stream=DEVNULL)
    daemon = Daemon(bench_settings(url, records, poll_interval=interval))

    def successes() -> int:
        v = daemon.metrics.registry.get_sample_value(
            "stage_monitor_polls_total", {"outcome": "success"}
        )
        return int(v or 0)

    async def measure(load: bool) -> dict[str, Any]:
        page_seconds: list[float] = []
        daemon.scheduler.delays.clear()
        polls0, t0 = successes(), time.monotonic()
        async with anyio.create_task_group() as tg:
            if load:

                async def loader() -> None:
                    async with aiohttp.ClientSession() as session:
                        while True:
                            t = time.perf_counter()
                            async with session.get(f"http://127.0.0.1:{daemon.port}/") as resp:
                                assert resp.status == 200
                                await resp.read()
                            page_seconds.append(time.perf_counter() - t)

                tg.start_soon(loader)
            await anyio.sleep(window)
            tg.cancel_scope.cancel()
        wall = time.monotonic() - t0
        delays = list(daemon.scheduler.delays)
        result: dict[str, Any] = {
            "polls_per_second": (successes() - polls0) / wall,
            "delay_p99_seconds": percentile(delays, 99),
            "delay_max_seconds": max(delays) if delays else None,
        }
        if load:
            result["page_loads"] = len(page_seconds)
            result["page_p50_seconds"] = percentile(page_seconds, 50)
            result["page_p99_seconds"] = percentile(page_seconds, 99)
        return result

    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        await anyio.sleep(interval + 1.0)  # the first round is spread over one interval
        quiet = await measure(load=False)
        loaded = await measure(load=True)
        tg.cancel_scope.cancel()
    return {
        "records": len(records),
        "interval_seconds": interval,
        "window_seconds": window,
        "quiet": quiet,
        "loaded": loaded,
        "polls_ratio": loaded["polls_per_second"] / quiet["polls_per_second"],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--url", required=True)
    p.add_argument("--records-file", required=True)
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--window", type=float, default=10.0)
    args = p.parse_args()
    with open(args.records_file, encoding="utf-8") as fh:
        records: list[str] = json.load(fh)
    result = {
        "render": render_part(args.records, args.repeat),
        "polling": anyio.run(polling_part, args.url, records, args.interval, args.window),
    }
    emit(result)


if __name__ == "__main__":
    main()
