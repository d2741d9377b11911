"""`stage-monitor demo`: the simulator and the daemon in one process, on loopback."""

from __future__ import annotations

import contextlib
import secrets

import anyio
from pydantic import SecretStr

from monitor.app import Daemon
from monitor.logging import configure_logging, get_logger
from monitor.settings import Settings
from monitor.simulator import Simulator, serve

DEMO_DURATION_SCALE = 0.1  # builds of a few minutes, so something happens while you watch
NEW_BUILD_EVERY = 20.0  # seconds; each of the two jobs builds every 40 s


def run_demo(port: int = 9630, records: int = 12, seed: int = 1) -> int:
    """Serve a simulated API and the daemon watching it until interrupted."""
    configure_logging(None, "info")
    log = get_logger("monitor.cli.demo")
    token = secrets.token_urlsafe(24)
    sim = Simulator(seed=seed, speed=1.0, tokens={token})
    plans = sim.populate(records, duration_scale=DEMO_DURATION_SCALE)
    # Two jobs that keep starting builds, found by job discovery as in production.
    jobs = [
        sim.add_job(
            name,
            every=NEW_BUILD_EVERY * 2,
            first_in=NEW_BUILD_EVERY * (i + 1),
            duration_scale=DEMO_DURATION_SCALE,
        )
        for i, name in enumerate(("payments-service", "web-frontend"))
    ]

    async def main() -> None:
        sim_runner, sim_port = await serve(sim, "127.0.0.1", 0)
        try:
            settings = Settings(
                endpoint=f"http://127.0.0.1:{sim_port}",
                auth_token=SecretStr(token),
                records=[p.record_id for p in plans],
                poll_interval=2.0,
                host="127.0.0.1",
                port=port,
                state_path=":memory:",  # the demo's builds are new every time
                rate_limit=50.0,
                jobs=[j.job_id for j in jobs],
                discovery_interval=5.0,
            )
            daemon = Daemon(settings)
            async with anyio.create_task_group() as tg:
                await tg.start(daemon.run)
                base = f"http://127.0.0.1:{daemon.port}"
                log.info(
                    "demo_ready",
                    status_url=f"{base}/",
                    metrics_url=f"{base}/metrics",
                    simulator=f"http://127.0.0.1:{sim_port}",
                )
                print(f"\n  status page: {base}/\n  metrics:     {base}/metrics\n", flush=True)
                await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await sim_runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(main)
    return 0
