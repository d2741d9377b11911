"""Admin API latency and throughput on loopback; prints numbers, asserts nothing.

Run: .venv/bin/python benchmarks/bench_admin_api.py
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid

import aiohttp
import anyio
from pydantic import SecretStr

from monitor.app import Daemon
from monitor.logging import configure_logging
from monitor.settings import Settings
from monitor.simulator import SimClock, Simulator, serve

SIM_TOKEN = "bench-sim-token-0123456789"  # noqa: S105 (loopback only)
ADMIN = "bench-admin-token-0123456789"
POSTS = 2000
WATCHED = 10_000
ROUNDS = 50


async def main() -> None:
    configure_logging("json", "warning", stream=io.StringIO())
    sim = Simulator(seed=1, tokens={SIM_TOKEN}, clock=SimClock(speed=0.0, start=1.79e9))
    runner, port = await serve(sim, "127.0.0.1", 0)
    settings = Settings(
        endpoint=f"http://127.0.0.1:{port}",
        auth_token=SecretStr(SIM_TOKEN),
        admin_token=SecretStr(ADMIN),
        poll_interval=3600,
        host="127.0.0.1",
        port=0,
    )
    daemon = Daemon(settings)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(daemon.run)
            base = f"http://127.0.0.1:{daemon.port}/api/v1/records"
            auth = {"Authorization": f"Bearer {ADMIN}"}
            async with aiohttp.ClientSession() as s:
                sem = asyncio.Semaphore(32)

                async def post(i: int) -> None:
                    body = {"record_id": str(uuid.UUID(int=i)), "labels": {"team": "t"}}
                    async with sem, s.post(base, json=body, headers=auth) as r:
                        assert r.status == 201, r.status

                t = time.perf_counter()
                await asyncio.gather(*(post(i) for i in range(POSTS)))
                dt = time.perf_counter() - t
                print(f"POST /records: {POSTS} new records in {dt:.2f} s = {POSTS / dt:.0f}/s")
                for i in range(POSTS, WATCHED):
                    await daemon.watchlist.add(str(uuid.UUID(int=i)), {"team": "t"}, "bench")
                for label, url in (
                    (f"GET /records?limit=100 ({WATCHED} watched)", base + "?limit=100"),
                    ("GET /records/{id}", f"{base}/{uuid.UUID(int=5)}"),
                ):
                    t = time.perf_counter()
                    for _ in range(ROUNDS):
                        async with s.get(url) as r:
                            await r.read()
                    print(f"{label}: {(time.perf_counter() - t) / ROUNDS * 1000:.2f} ms")
            tg.cancel_scope.cancel()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
