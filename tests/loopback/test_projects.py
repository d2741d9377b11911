"""Project discovery against the simulator: every job of a project, history per job."""

from __future__ import annotations

import io
from collections import Counter

from monitor.app import Daemon
from monitor.domain import RecordState
from monitor.simulator.faults import Fault
from monitor.simulator.scenario import TERMINAL_STATUSES, record_status, stage_states
from monitor.tracking.projects import ProjectDiscovery
from tests.support.loopback import SimServer, log_events, make_settings, running, scrape
from tests.support.samples import value

EVERY = 600.0  # simulated seconds between two builds of a job


def discovery_of(daemon: Daemon) -> ProjectDiscovery:
    assert daemon.project_discovery is not None
    return daemon.project_discovery


async def next_round(daemon: Daemon, rounds: int = 1) -> None:
    """Wait until `rounds` rounds have run that started after this call."""
    disc = discovery_of(daemon)
    await disc.wait_rounds(disc.rounds_started + rounds)


def settings_for(sim: SimServer, projects: list[str], **overrides: object) -> object:
    values: dict[str, object] = {
        "projects": projects,
        "discovery_interval": 0.05,
        "poll_interval": 0.5,
    }
    values.update(overrides)
    return make_settings(sim.url, **values)


async def test_a_project_of_120_jobs_is_watched_whole_and_counted_per_job(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    world = s.projects
    names = [f"svc-{i:03d}" for i in range(115)] + [f"tmp-{i}" for i in range(3)]
    names += ["old-a", "old-b"]
    project = world.add_project(names=names, every=EVERY)
    jobs = world.jobs_of(project.project_id)
    by_name = {j.job_name: j for j in jobs}
    world.disabled |= {by_name["old-a"].job_id, by_name["old-b"].job_id}
    skipped = {j.job_id for j in jobs if j.job_name.startswith(("tmp-", "old-"))}
    watched = {j.job_id for j in jobs} - skipped
    assert len(jobs) == 120 and len(watched) == 115

    settings = make_settings(
        sim.url,
        projects=[project.project_id],
        job_exclude="tmp-.*",
        discovery_interval=0.05,
        poll_interval=1.0,
    )
    d = Daemon(settings)
    async with running(d):
        await next_round(d)
        assert set(discovery_of(d).jobs) == watched
        for _ in range(8):  # builds start over several rounds
            s.clock.advance(EVERY / 8)
            s.start_due_builds()
            await next_round(d)
            now = s.clock.now()
            for plan in s.plans.values():
                running_now = record_status(plan, now) == "RUNNING"
                if plan.job_id in watched and running_now:
                    assert plan.record_id in d.watchlist.records
                if plan.job_id in skipped:
                    assert plan.record_id not in d.watchlist.records
        followed = [s.plans[rid] for rid in d.watchlist.records]
        for job in jobs:
            job.every = 0.0  # no more builds: let the watched ones finish
        assert len(followed) >= 100
        s.clock.advance(max(p.end_time() for p in followed) - s.clock.now() + 1)
        await d.watchlist.wait_for(
            lambda: all(r.state.finished for r in d.watchlist.records.values())
        )
        assert all(r.state is RecordState.COMPLETE for r in d.watchlist.records.values())
        samples = await scrape(d)

    # Per-job aggregates equal the simulator's truth, exactly.
    now = s.clock.now()
    name_of = {j.job_id: j.job_name for j in jobs}
    records_truth: Counter[tuple[str, str]] = Counter()
    stages_truth: Counter[tuple[str, str, str]] = Counter()
    for plan in followed:
        records_truth[(name_of[plan.job_id], record_status(plan, now))] += 1
        for st in stage_states(plan, now).values():
            assert st["status"] in TERMINAL_STATUSES
            stages_truth[(name_of[plan.job_id], st["display_name"], st["status"])] += 1
    records_seen = {
        (dict(labels)["job_name"], dict(labels)["result"]): v
        for (name, labels), v in samples.items()
        if name == "codearts_build_records_finished_total"
    }
    assert records_seen == dict(records_truth)
    stages_seen = {
        (dict(labels)["job_name"], dict(labels)["display_name"], dict(labels)["status"]): v
        for (name, labels), v in samples.items()
        if name == "codearts_build_stages_finished_total"
    }
    assert stages_seen == dict(stages_truth)
    assert value(samples, "stage_monitor_discovery_jobs", state="watched") == 115
    assert value(samples, "stage_monitor_discovery_jobs", state="excluded") == 3
    assert value(samples, "stage_monitor_discovery_jobs", state="disabled") == 2

    # Per-record series carry the four labels.
    plan = followed[0]
    per_record = [labels for (_, labels) in samples if ("record_id", plan.record_id) in labels]
    assert per_record
    for labels in per_record:
        got = dict(labels)
        assert got["job_id"] == plan.job_id
        assert got["job_name"] == name_of[plan.job_id]
        assert got["build_number"] == str(plan.build_number)
        assert got["branch"] == "master"
    assert log_events(log_stream, "discovery_problem") == []
