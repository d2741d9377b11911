"""Case 7, discovery: API requests per discovery round, whole projects against per-job.

One simulated project of `jobs` jobs (in-process, on loopback, its clock moved by
hand); each measured round `active` jobs start a build first. The same round is
run by project discovery (MONITOR_PROJECTS: the job list, then one brief-records
request for the jobs it names) and by per-job discovery (MONITOR_JOBS: ListRecords
for every job, after ShowJobInfo once per job). Requests are counted at the
simulator, per round; every build started must be watched by both.
"""

from __future__ import annotations

import random
from typing import Any

import anyio

from benchmarks.common import DEVNULL
from monitor.codearts.auth.token import StaticTokenAuth
from monitor.codearts.client import CodeArtsClient
from monitor.logging import configure_logging
from monitor.metrics.aggregates import MonitorMetrics
from monitor.settings import DEFAULT_TERMINAL_STATUSES
from monitor.simulator import SimClock, Simulator, serve
from monitor.store.memory import MemoryStore
from monitor.tracking.discovery import Discovery
from monitor.tracking.projects import ProjectDiscovery
from monitor.tracking.watchlist import Watchlist

TOKEN = "bench-token-discovery-0000"  # noqa: S105 - the simulator's own test token
TERMINAL = frozenset(DEFAULT_TERMINAL_STATUSES)


async def _measure(jobs: int, active: int, rounds: int, seed: int) -> dict[str, Any]:
    sim = Simulator(seed=seed, tokens={TOKEN}, clock=SimClock(speed=0.0, start=1.79e9))
    project = sim.projects.add_project(jobs)
    job_ids = list(project.job_ids)
    rng = random.Random(seed)
    runner, port = await serve(sim, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}"
    try:
        async with CodeArtsClient(url, StaticTokenAuth.from_value(TOKEN)) as client:
            kinds: dict[str, Any] = {}
            for kind in ("projects", "per_job"):
                watchlist = Watchlist(MemoryStore(), terminal_statuses=TERMINAL)
                metrics = MonitorMetrics()
                finder: ProjectDiscovery | Discovery
                if kind == "projects":
                    finder = ProjectDiscovery(
                        client,
                        watchlist,
                        metrics,
                        [project.project_id],
                        interval=60.0,
                        refresh_interval=300.0,
                        terminal_statuses=TERMINAL,
                    )
                else:
                    finder = Discovery(
                        client,
                        watchlist,
                        metrics,
                        job_ids,
                        interval=60.0,
                        terminal_statuses=TERMINAL,
                    )
                per_round = []
                missed = 0
                await finder.run_once()  # the first round learns the jobs
                first = len(sim.requests)
                for _ in range(rounds):
                    started = [sim.new_build(job_id=j) for j in rng.sample(job_ids, active)]
                    before = len(sim.requests)
                    await finder.run_once()
                    per_round.append(len(sim.requests) - before)
                    missed += sum(p.record_id not in watchlist.records for p in started)
                    sim.clock.advance(60.0)
                kinds[kind] = {
                    "first_round_requests": first,
                    "requests_per_round": per_round,
                    "max_requests_per_round": max(per_round),
                    "builds_missed": missed,
                }
                sim.requests.clear()
            return kinds
    finally:
        await runner.cleanup()


def run_once(jobs: int = 500, active: int = 5, rounds: int = 5, seed: int = 1) -> dict[str, Any]:
    configure_logging("json", "warning", stream=DEVNULL)
    result: dict[str, Any] = anyio.run(_measure, jobs, active, rounds, seed)
    p, j = result["projects"], result["per_job"]
    return {
        "jobs": jobs,
        "active_per_round": active,
        "rounds": rounds,
        "projects": p,
        "per_job": j,
        "ratio_per_job_over_projects": round(
            j["max_requests_per_round"] / max(1, p["max_requests_per_round"]), 1
        ),
    }
