"""Fuzz the admin API with schemathesis, driven by our own OpenAPI document.

The daemon runs on loopback in a background event loop (schemathesis calls are
synchronous); every generated request, valid or not, must get a documented,
non-5xx answer that matches the document.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.from_thread
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr

from monitor.app import Daemon
from monitor.server.admin import openapi_document
from monitor.simulator import SimClock, Simulator, serve
from tests.support.loopback import SIM_START, TOKEN, make_settings, running

ADMIN = "fuzz-admin-token-Xc4vB7nM1qW9"
schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """A simulator and a daemon with an admin token, in their own event loop thread."""
    with anyio.from_thread.start_blocking_portal() as portal:
        sim = Simulator(seed=3, tokens={TOKEN}, clock=SimClock(speed=0.0, start=SIM_START))
        plans = [sim.new_build() for _ in range(3)]
        runner, sim_port = portal.call(serve, sim, "127.0.0.1", 0)
        daemon = Daemon(
            make_settings(
                f"http://127.0.0.1:{sim_port}",
                records=[p.record_id for p in plans],
                admin_token=SecretStr(ADMIN),
            )
        )
        cm = portal.wrap_async_context_manager(running(daemon))
        with cm:
            yield f"http://127.0.0.1:{daemon.port}"
        portal.call(runner.cleanup)


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_crashes_the_admin_api(case: Any, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN}"})
