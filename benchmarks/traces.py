"""Case 5, CPU per completed build: exporting its trace vs polling it to completion.

One process, two legs measured side by side on the same builds:

- `poll`: the daemon (no HTTP server, traces off) polls every build from its start
  to its completion against the simulator (in its own process, its clock sped up
  `--speed` times, so `--interval` stands for `interval x speed` seconds of a real
  build). Charged: this process's CPU from the start until every build is complete.
- `export`: the trace exporter (the daemon's own, with its outbox) is handed the same
  completed builds, as their completion events, and delivers them to a loopback
  OTLP/HTTP receiver in another process. Charged: this process's CPU from the first
  event until the receiver accepted the last trace. Twice: all events at once (the
  exporter batches them, its best case) and one at a time, each waiting for the
  previous delivery (a request per build: builds that complete apart, its worst case).

Usage (one measurement, prints one JSON line):
    python -m benchmarks.traces --url URL --receiver URL --builds N --interval S
    python -m benchmarks.traces receive   # the receiver: prints its URL, serves till stdin closes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import anyio
from aiohttp import web

from benchmarks.common import DEVNULL, ROOT, bench_settings, emit, process_cpu
from monitor import __version__
from monitor.app import Daemon
from monitor.domain import RecordState
from monitor.logging import configure_logging
from monitor.store.outbox import MemoryOutbox
from monitor.traces.exporter import TraceExporter
from monitor.traces.spans import BuildTrace, build_spans
from monitor.tracking.tracker import RecordCompleted

ANSWER = b""  # an empty ExportTraceServiceResponse: full success


class _Count:
    """The exporter's observer: counts what was delivered."""

    def __init__(self) -> None:
        self.delivered = 0
        self.dropped = 0
        self.changed = anyio.Event()

    def count_traces(self, outcome: str, builds: int) -> None:
        if outcome == "delivered":
            self.delivered += builds
        elif outcome == "dropped":
            self.dropped += builds
        self.changed.set()
        self.changed = anyio.Event()

    def set_trace_queue(self, spans: int) -> None:
        return None


async def _start_builds(url: str, n: int) -> list[str]:
    """`n` builds of one job, each starting now (so each is polled from its start)."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/_sim/jobs", json={"job_name": "bench"}) as resp:
            job_id = (await resp.json())["job_id"]
        out = []
        for _ in range(n):
            async with session.post(f"{url}/_sim/jobs", json={"job_id": job_id}) as resp:
                out.append((await resp.json())["record_id"])
        return out


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    records = await _start_builds(args.url, args.builds)
    configure_logging("json", "info", stream=DEVNULL)
    daemon = Daemon(
        bench_settings(args.url, records, poll_interval=args.interval, max_concurrency=32),
        serve_http=False,
    )
    wl = daemon.watchlist

    def all_done() -> bool:
        return len(wl.records) == len(records) and all(
            r.state is not RecordState.ACTIVE for r in wl.records.values()
        )

    # --- leg 1: polling every build to its completion ---
    cpu0, t0 = process_cpu(), time.monotonic()
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        with anyio.fail_after(args.timeout):
            await wl.wait_for(all_done)
        poll_cpu, poll_wall = process_cpu() - cpu0, time.monotonic() - t0
        tg.cancel_scope.cancel()
    completed = [r for r in wl.records.values() if r.state is RecordState.COMPLETE]
    polls = sum(r.polls for r in completed)

    # --- leg 2: exporting the same builds' traces, all at once (batched) ---
    export_cpu, export_wall, delivered = await _export(args, wl, completed, one_by_one=False)
    # --- leg 3: one at a time, as builds that complete apart: a request per build ---
    single_cpu, single_wall, _ = await _export(args, wl, completed, one_by_one=True)
    n = len(completed)
    spans = sum(len(s) for s in [_spans(r) for r in completed])
    return {
        "builds": n,
        "polls": polls,
        "polls_per_build": polls / n,
        "spans": spans,
        "delivered": delivered,
        "poll_cpu_seconds": poll_cpu,
        "poll_wall_seconds": poll_wall,
        "export_cpu_seconds": export_cpu,
        "export_wall_seconds": export_wall,
        "poll_cpu_per_build_us": poll_cpu / n * 1e6,
        "export_cpu_per_build_us": export_cpu / n * 1e6,
        "export_over_poll": export_cpu / poll_cpu,
        "single_cpu_seconds": single_cpu,
        "single_wall_seconds": single_wall,
        "single_cpu_per_build_us": single_cpu / n * 1e6,
        "single_over_poll": single_cpu / poll_cpu,
    }


async def _export(
    args: argparse.Namespace, wl: Any, completed: list[Any], *, one_by_one: bool
) -> tuple[float, float, int]:
    """CPU and wall seconds to deliver every completed build's trace, and how many arrived."""
    count = _Count()
    exporter = TraceExporter(
        wl,
        MemoryOutbox(),
        count,
        url=args.receiver,
        headers={"authorization": "Bearer bench"},
        service_name="codearts-build",
        scope_version=__version__,
        queue_size=1_000_000,
        retry_for=3600.0,
        backoff_max=1.0,
    )
    cpu0, t0 = process_cpu(), time.monotonic()
    async with anyio.create_task_group() as tg:
        await tg.start(exporter.run)
        with anyio.fail_after(args.timeout):
            for i, rec in enumerate(completed):
                await exporter.remember(rec.record_id, rec.finished_at or 0.0)
                exporter.on_event(RecordCompleted(rec.record_id, rec.result or "", None))
                while one_by_one and count.delivered + count.dropped <= i:
                    await count.changed.wait()
            while count.delivered + count.dropped < len(completed):
                await count.changed.wait()
        cpu, wall = process_cpu() - cpu0, time.monotonic() - t0
        tg.cancel_scope.cancel()
    return cpu, wall, count.delivered


def _spans(rec: Any) -> list[Any]:
    return build_spans(BuildTrace(rec.record_id, rec.snapshot, rec.result or "", rec.labels))


@contextmanager
def receiver_process() -> Iterator[str]:
    """The loopback OTLP/HTTP receiver in a process of its own; yields its traces URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.traces", "receive"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())["url"]
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _receive() -> None:
    async def traces(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=ANSWER, content_type="application/x-protobuf")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(json.dumps({"url": f"http://127.0.0.1:{port}/v1/traces"}), flush=True)
    try:
        await anyio.to_thread.run_sync(sys.stdin.read)
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()


def main() -> None:
    if sys.argv[1:2] == ["receive"]:
        anyio.run(_receive)
        return
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--receiver", required=True)
    p.add_argument("--builds", type=int, required=True)
    p.add_argument("--interval", type=float, required=True)
    p.add_argument("--timeout", type=float, default=240.0)
    emit(anyio.run(_measure, p.parse_args()))


if __name__ == "__main__":
    main()
