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
DEMO_BUILD_EVERY = 120.0  # seconds between two builds of each job (starts spread evenly)
DEMO_JOBS = (
    "payments-service",
    "web-frontend",
    "checkout-api",
    "search-indexer",
    "mobile-app",
    "auth-service",
    "billing-worker",
    "docs-site",
    "inventory-api",
    "notifications",
    "reporting-etl",
    "gateway",
    "user-profile",
    "recommendations",
    "media-transcoder",
    "admin-console",
    "data-export",
    "ci-templates",
    "scratch-alice",
    "scratch-bob",
)
DEMO_JOB_EXCLUDE = "scratch-.*"  # MONITOR_JOB_EXCLUDE: anchored, as in Prometheus relabelling


def run_demo(port: int = 9630, records: int = 12, seed: int = 1) -> int:
    """Serve a simulated API and the daemon watching it until interrupted."""
    configure_logging(None, "info")
    log = get_logger("monitor.cli.demo")
    token = secrets.token_urlsafe(24)
    sim = Simulator(seed=seed, speed=1.0, tokens={token})
    plans = sim.populate(records, duration_scale=DEMO_DURATION_SCALE)
    # One project of 20 jobs that keep starting builds, found by project discovery as in
    # production; the two scratch jobs are left out by DEMO_JOB_EXCLUDE.
    project = sim.projects.add_project(
        names=DEMO_JOBS, every=DEMO_BUILD_EVERY, duration_scale=DEMO_DURATION_SCALE
    )

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
                projects=[project.project_id],
                job_exclude=DEMO_JOB_EXCLUDE,
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
                    project=project.project_id,
                    job_exclude=DEMO_JOB_EXCLUDE,
                )
                print(f"\n  status page: {base}/\n  metrics:     {base}/metrics\n", flush=True)
                await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await sim_runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(main)
    return 0
