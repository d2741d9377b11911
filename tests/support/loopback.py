"""A simulator on loopback, daemons that talk to it, captured logs (and their fixtures)."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import pytest
from pydantic import SecretStr

from monitor.app import Daemon
from monitor.logging import configure_logging, secret_filter
from monitor.settings import Settings
from monitor.simulator import SimClock, Simulator, serve
from tests.support.samples import Samples, parse_samples

TOKEN = "sim-token-Zq8wX3vR5tY7uI9o"
SIM_START = 1_790_000_000.0  # a fixed simulated wall-clock start


@dataclass
class SimServer:
    sim: Simulator
    url: str


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Every log line the code under test writes, as JSON lines."""
    buf = io.StringIO()
    configure_logging("json", "debug", stream=buf)
    yield buf
    secret_filter.clear()


def log_events(buf: io.StringIO, event: str | None = None) -> list[dict[str, Any]]:
    out = [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]
    return [e for e in out if event is None or e["event"] == event]


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    """A simulator whose clock only moves when the test says so."""
    simulator = Simulator(seed=7, tokens={TOKEN}, clock=SimClock(speed=0.0, start=SIM_START))
    runner, port = await serve(simulator, "127.0.0.1", 0)
    try:
        yield SimServer(simulator, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def make_settings(url: str, records: list[str] | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "endpoint": url,
        "auth_token": SecretStr(TOKEN),
        "records": records or [],
        "poll_interval": 0.05,
        "host": "127.0.0.1",
        "port": 0,
        "request_timeout": 2.0,
        "state_path": ":memory:",
        "rate_limit": 1000.0,
        "rate_burst": 100,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running(daemon: Daemon) -> AsyncIterator[Daemon]:
    """Run a daemon for the duration of the block; it is cancelled on the way out."""
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        try:
            yield daemon
        finally:
            tg.cancel_scope.cancel()


class FakeClock:
    """A wall clock for the daemon that a test moves by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def fetch(daemon: Daemon, path: str, accept: str | None = None) -> tuple[int, str, str]:
    headers = {"Accept": accept} if accept else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{daemon.port}{path}", headers=headers) as resp,
    ):
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def scrape(daemon: Daemon) -> Samples:
    """/metrics over HTTP, parsed into {(sample name, labels): value}."""
    status, _, text = await fetch(daemon, "/metrics")
    assert status == 200
    return parse_samples(text)


async def wait_until(daemon: Daemon, predicate: Any, timeout: float = 10.0) -> None:
    """Await a watchlist change that makes `predicate()` true (fails after `timeout`)."""
    with anyio.fail_after(timeout):
        await daemon.watchlist.wait_for(predicate)
