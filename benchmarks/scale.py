"""Case 2, scale: the daemon alone in its process, watching many records at a long interval.

It measures, after one full interval of warm-up (the first round is spread over
an interval): the delay between each poll's due time and its start (the
scheduler's own record of it), the process's RSS, and its CPU share. A scrape
is rendered in-process every `--scrape-every` seconds, as Prometheus would ask.

Usage (prints one JSON line):
    python -m benchmarks.scale --url URL --records-file PATH --interval 10 --window 20
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import anyio

from benchmarks.common import DEVNULL, bench_settings, emit, percentile, process_cpu, rss_bytes
from monitor.app import Daemon
from monitor.logging import configure_logging
from monitor.metrics.renderer import render_metrics


async def run(args: argparse.Namespace, records: list[str]) -> dict[str, Any]:
    configure_logging("json", "info", stream=DEVNULL)
    settings = bench_settings(
        args.url, records, poll_interval=args.interval, max_concurrency=args.concurrency
    )
    daemon = Daemon(settings, serve_http=False)
    scrape_seconds: list[float] = []

    async def scraper() -> None:
        while True:
            await anyio.sleep(args.scrape_every)
            t = time.perf_counter()
            render_metrics(daemon.collector, daemon.metrics.registry, False)
            scrape_seconds.append(time.perf_counter() - t)

    def successes() -> int:
        v = daemon.metrics.registry.get_sample_value(
            "stage_monitor_polls_total", {"outcome": "success"}
        )
        return int(v or 0)

    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        tg.start_soon(scraper)
        await anyio.sleep(args.interval + args.warmup)
        daemon.scheduler.delays.clear()
        cpu0, polls0, t0 = process_cpu(), successes(), time.monotonic()
        await anyio.sleep(args.window)
        cpu1, polls1, t1 = process_cpu(), successes(), time.monotonic()
        delays = list(daemon.scheduler.delays)
        active = sum(1 for r in daemon.watchlist.records.values() if r.state.value == "active")
        tg.cancel_scope.cancel()
    rss, peak = rss_bytes()
    wall = t1 - t0
    return {
        "records": len(records),
        "active_at_end": active,
        "interval_seconds": args.interval,
        "polls": polls1 - polls0,
        "polls_per_second": (polls1 - polls0) / wall,
        "delay_p50_seconds": percentile(delays, 50),
        "delay_p99_seconds": percentile(delays, 99),
        "delay_max_seconds": max(delays) if delays else None,
        "delays_measured": len(delays),
        "rss_bytes": rss,
        "rss_peak_bytes": peak,
        "cpu_share": (cpu1 - cpu0) / wall,
        "scrape_seconds_median": sorted(scrape_seconds)[len(scrape_seconds) // 2]
        if scrape_seconds
        else None,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--records-file", required=True)
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--warmup", type=float, default=2.0, help="seconds after the first interval")
    p.add_argument("--window", type=float, default=20.0)
    p.add_argument("--scrape-every", type=float, default=15.0)
    args = p.parse_args()
    with open(args.records_file, encoding="utf-8") as fh:
        records: list[str] = json.load(fh)
    emit(anyio.run(run, args, records))


if __name__ == "__main__":
    main()
