"""Case 4, detection latency: from a stage changing in the simulator to the change on /metrics.

Three processes: the simulator (its clock moves only when told), the daemon
(polling at a 1 s interval, serving /metrics), and this harness, which plays
Prometheus. Each round, the harness reads the simulator's truth, moves the
simulated clock forward so that some stages change status, and then scrapes
/metrics every few milliseconds until every changed stage shows its new status.
A change's latency is from just before the clock moved to the arrival of the
first scrape that shows it: an upper bound (it includes up to one scrape period).

`python -m benchmarks.latency --daemon --url URL --records-file PATH --interval 1`
is the daemon's side (prints its port, runs until stdin closes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from benchmarks.common import DEVNULL, ROOT, _env, bench_settings, percentile, simulator_process

STATUS_LINE = re.compile(
    r'^codearts_build_stage_status\{record_id="([^"]+)",build_stage="([^"]+)",'
    r'.*status="([^"]+)"\} 1',
    re.MULTILINE,
)
TERMINAL = {"SUCCESS", "FAILURE", "ABORTED", "SCHEDULE_FAILURE", "TIMEOUT", "UNKNOWN"}


# --- the daemon's side ---------------------------------------------------------------------


async def serve_daemon(args: argparse.Namespace, records: list[str]) -> None:
    from monitor.app import Daemon
    from monitor.logging import configure_logging

    configure_logging("json", "info", stream=DEVNULL)
    daemon = Daemon(bench_settings(args.url, records, poll_interval=args.interval))
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        print(json.dumps({"port": daemon.port}), flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)
        tg.cancel_scope.cancel()


# --- the harness ---------------------------------------------------------------------------


def statuses(text: str) -> dict[tuple[str, str], str]:
    return {(m[1], m[2]): m[3] for m in STATUS_LINE.finditer(text)}


async def truth(session: aiohttp.ClientSession, sim_url: str) -> dict[tuple[str, str], str]:
    async with session.get(f"{sim_url}/_sim/records") as resp:
        data: dict[str, dict[str, dict[str, Any]]] = await resp.json()
    return {(rid, key): st["status"] for rid, stages in data.items() for key, st in stages.items()}


async def measure_rounds(
    sim_url: str, metrics_url: str, rounds: int, step: float, scrape_period: float
) -> tuple[list[float], int]:
    """Latencies (seconds) of every stage change over `rounds` clock steps, and the misses."""
    latencies: list[float] = []
    missed = 0
    async with aiohttp.ClientSession() as session:
        # Wait until the daemon shows the simulator's present.
        before = await truth(session, sim_url)
        with anyio.fail_after(30):
            while True:
                async with session.get(metrics_url) as resp:
                    if statuses(await resp.text()) == before:
                        break
                await asyncio.sleep(0.05)
        for _ in range(rounds):
            records_done = {
                rid
                for rid in {r for r, _ in before}
                if all(s in TERMINAL for (r, _), s in before.items() if r == rid)
            }
            t0 = time.monotonic()
            async with session.post(f"{sim_url}/_sim/clock", json={"advance": step}) as resp:
                await resp.read()
            after = await truth(session, sim_url)
            pending = {
                k: s for k, s in after.items() if before.get(k) != s and k[0] not in records_done
            }
            seen: dict[tuple[str, str], float] = {}
            deadline = t0 + 5.0
            while len(seen) < len(pending) and time.monotonic() < deadline:
                async with session.get(metrics_url) as resp:
                    text = await resp.text()
                arrived = time.monotonic()
                shown = statuses(text)
                for k, s in pending.items():
                    if k not in seen and shown.get(k) == s:
                        seen[k] = arrived - t0
                await asyncio.sleep(scrape_period)
            latencies.extend(seen.values())
            missed += len(pending) - len(seen)
            before = after
    return latencies, missed


def run_once(
    records: int, interval: float, rounds: int, step: float, scrape_period: float, seed: int
) -> dict[str, Any]:
    with simulator_process(records=records, speed=0.0, duration_scale=0.3, seed=seed) as sim:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(sim.records, fh)
        records_file = Path(fh.name)
        proc = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [
                sys.executable,
                "-m",
                "benchmarks.latency",
                "--daemon",
                "--url",
                sim.url,
                "--records-file",
                str(records_file),
                "--interval",
                str(interval),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=_env(),
        )
        try:
            assert proc.stdout is not None
            port = json.loads(proc.stdout.readline())["port"]
            latencies, missed = asyncio.run(
                measure_rounds(
                    sim.url, f"http://127.0.0.1:{port}/metrics", rounds, step, scrape_period
                )
            )
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            records_file.unlink(missing_ok=True)
    return {
        "interval_seconds": interval,
        "changes": len(latencies),
        "missed": missed,
        "latency_p50_seconds": percentile(latencies, 50),
        "latency_p99_seconds": percentile(latencies, 99),
        "latency_max_seconds": max(latencies) if latencies else None,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--daemon", action="store_true")
    p.add_argument("--url")
    p.add_argument("--records-file")
    p.add_argument("--interval", type=float, default=1.0)
    args = p.parse_args()
    if not args.daemon:
        p.error("the harness side runs from `python -m benchmarks`")
    with open(args.records_file, encoding="utf-8") as fh:
        records: list[str] = json.load(fh)
    anyio.run(serve_daemon, args, records)


if __name__ == "__main__":
    main()
