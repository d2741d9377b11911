"""The process-wide request budget: rate, bursts, and what a throttle does to everyone."""

from __future__ import annotations

import anyio
import pytest
from aiohttp import web

from monitor.app import Daemon
from monitor.app.auth import auth_from_settings
from monitor.codearts.client import CodeArtsClient
from monitor.codearts.errors import ServerError, Throttled
from monitor.codearts.ratelimit import TokenBucket
from monitor.server.http import start_site
from monitor.simulator import Fault
from tests.support.loopback import SimServer, fetch, make_settings, running, scrape, wait_until
from tests.support.samples import value


async def test_requests_beyond_the_burst_wait_for_the_rate() -> None:
    gate = TokenBucket(rate=50, burst=5)
    started = anyio.current_time()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(30):
                tg.start_soon(gate.acquire)
    # 5 at once, the other 25 at 50 per second: at least half a second in all.
    assert anyio.current_time() - started >= 25 / 50 * 0.98


async def test_a_throttle_pauses_halves_the_rate_and_recovers() -> None:
    now = [100.0]
    gate = TokenBucket(rate=8, burst=1, recovery=10.0, clock=lambda: now[0])
    gate.throttled(2.0)
    assert gate.paused_until == 102.0
    assert gate.current_rate() == 4.0
    gate.throttled(0.5)  # an answer to a request already in flight: same pause, no halving
    assert (gate.pauses, gate.throttles, gate.paused_until) == (1, 2, 102.0)
    now[0] = 112.0  # one recovery period after the pause ended
    assert gate.current_rate() == 8.0
    gate.throttled(10**9)  # an absurd Retry-After is capped
    assert gate.paused_until == 112.0 + 300.0


@pytest.mark.parametrize(
    ("status", "body", "headers", "error"),
    [
        (400, {"error_code": "CB.00060211", "error_msg": "too many"}, {}, Throttled),
        (200, {"error_code": "CB.00060211", "error_msg": "too many"}, {}, Throttled),
        (
            503,
            {"error_code": "CB.00060100", "error_msg": "busy"},
            {"Retry-After": "2"},
            ServerError,
        ),
        (
            429,
            {"error_code": "APIGW.0308", "error_msg": "throttled"},
            {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"},
            Throttled,
        ),
    ],
)
async def test_every_way_of_saying_slow_down_pauses_the_process(
    status: int, body: dict[str, str], headers: dict[str, str], error: type[Exception]
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response(body, status=status, headers=headers)

    app = web.Application()
    app.router.add_get("/v1/record/{rid}/full-stages", answer)
    runner, port = await start_site(app, "127.0.0.1", 0)
    settings = make_settings(f"http://127.0.0.1:{port}")
    gate = TokenBucket(100, 10)
    client = CodeArtsClient(settings.endpoint_url, auth_from_settings(settings), gate=gate)
    before = anyio.current_time()
    try:
        with pytest.raises(error):
            await client.full_stages("0" * 36)
    finally:
        await client.aclose()
        await runner.cleanup()
    assert gate.pauses == 1
    expected = 300.0 if "2099" in headers.get("Retry-After", "") else 2.0 if headers else 1.0
    assert gate.paused_until - before == pytest.approx(expected, abs=0.5)


async def test_a_throttling_pause_is_not_a_stall_and_shows_in_metrics(sim: SimServer) -> None:
    s = sim.sim
    s.faults.retry_after = "1.2"
    plans = [s.new_build(started_ago=-1_000_000) for _ in range(2)]  # polled all the time
    daemon = Daemon(
        make_settings(
            sim.url,
            [p.record_id for p in plans],
            max_concurrency=1,
            stall_timeout=0.3,
            rate_limit=100,
        )
    )
    async with running(daemon):
        await daemon.scheduler.wait_ready()
        s.faults.inject(Fault.THROTTLE)
        await wait_until(daemon, lambda: daemon.gate.pauses == 1)
        await anyio.sleep(0.8)  # the condition is time itself: longer than the stall timeout
        # The dispatcher really has been waiting all that time (its one worker is held
        # by the gate), yet this is a deliberate pause, not a stall.
        assert anyio.current_time() - daemon.scheduler.heartbeat > 0.3
        assert (await fetch(daemon, "/healthz"))[0] == 200
        samples = await scrape(daemon)
    assert value(samples, "stage_monitor_throttle_pauses_total") == 1
    rate = value(samples, "stage_monitor_rate_limit_requests_per_second")
    assert rate is not None
    assert 50 <= rate < 100
