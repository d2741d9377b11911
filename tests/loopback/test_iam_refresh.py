"""IAM tokens renewed by a background task ahead of expiry: no request ever carries a stale one.

Tokens here live 1.2 s of real time (the simulator checks expiry on its wall
clock) while every record is polled each 50 ms, so a token refreshed only when a
poll finds it stale, or only after the gateway refuses it, would show up as 401
answers in the simulator's request log.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import anyio
from pydantic import SecretStr

from monitor.app import Daemon
from monitor.codearts.auth import IamPasswordAuth
from tests.support.loopback import SimServer, log_events, make_settings, running, scrape, wait_until
from tests.support.samples import series, value

DOMAIN, USER, PASSWORD = "acme", "monitor-bot", "pw-Sx9!kQ2#zL7vB4"
LIFETIME = 1.2


async def test_short_lived_tokens_are_renewed_before_any_request_is_refused(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    s.iam_users[(DOMAIN, USER)] = PASSWORD
    s.token_lifetime = LIFETIME
    ids = [s.new_build(started_ago=float(i), duration_scale=1000).record_id for i in range(40)]
    settings = make_settings(
        sim.url,
        ids,
        auth_token=None,
        iam_username=USER,
        iam_password=SecretStr(PASSWORD),
        iam_domain=DOMAIN,
        iam_endpoint=sim.url,
        poll_interval=0.05,
        # Far fewer requests allowed than wanted: polls queue at the rate gate for most of
        # a token's life, so a token picked before the queue would be stale after it.
        rate_limit=40.0,
        rate_burst=1,
        max_concurrency=16,
    )
    daemon = Daemon(settings)
    async with running(daemon):
        # Four tokens: three renewals, each of a token polled every 50 ms until then.
        await wait_until(daemon, lambda: s.token_requests >= 4, timeout=15)
        samples = await scrape(daemon)
    api_requests = [r for r in s.requests if r.record_id is not None]
    assert len(api_requests) > 80
    assert [r for r in s.requests if r.status == 401] == []
    assert series(samples, "stage_monitor_polls_total") == {
        frozenset({("outcome", "success")}): value(
            samples, "stage_monitor_polls_total", outcome="success"
        )
    }
    assert sum(series(samples, "stage_monitor_auth_failures_total").values()) == 0
    assert log_events(log_stream, "iam_token_refresh_failed") == []


async def test_the_token_is_renewed_on_a_timer_not_by_the_first_poll_that_needs_it(
    sim: SimServer,
) -> None:
    s = sim.sim
    s.iam_users[(DOMAIN, USER)] = PASSWORD
    s.token_lifetime = LIFETIME
    issued: list[str] = []
    third = anyio.Event()

    def on_token(values: Iterable[str]) -> None:
        issued.extend(values)
        if len(issued) >= 3:
            third.set()

    auth = IamPasswordAuth(
        iam_url=sim.url,
        username=USER,
        password=lambda: PASSWORD,
        domain=DOMAIN,
        project_name="cn-north-4",
        on_token=on_token,
    )
    daemon = Daemon(make_settings(sim.url, []), auth=auth)  # nothing to poll
    async with running(daemon):
        with anyio.fail_after(10):
            await third.wait()
    # Only the timer asked IAM: three tokens, and not one API request needed them.
    assert len(set(issued)) >= 3
    assert {r.path for r in s.requests} == {"/v3/auth/tokens"}
