"""Project discovery against the simulator: every job of a project, history per job."""

from __future__ import annotations

import io
from collections import Counter

import anyio

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


async def test_jobs_added_and_deleted_are_picked_up_by_the_next_job_list_read(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    world = s.projects
    project = world.add_project(names=["api", "web"])
    api, web = world.jobs_of(project.project_id)
    d = Daemon(
        make_settings(
            sim.url,
            projects=[project.project_id],
            discovery_interval=0.05,
            job_refresh_interval=0.2,
        )
    )
    async with running(d):
        await next_round(d)
        assert set(discovery_of(d).jobs) == {api.job_id, web.job_id}
        new = world.add_job(project.project_id, "worker")
        world.delete_job(web.job_id)
        await next_round(d)
        assert set(discovery_of(d).jobs) == {api.job_id, new.job_id}
        plan = s.new_build(job_id=new.job_id)
        await next_round(d)
        assert plan.record_id in d.watchlist.records
        assert d.watchlist.records[plan.record_id].labels["job_name"] == "worker"
    assert [e["job_name"] for e in log_events(log_stream, "job_dropped")] == ["web"]
    assert "worker" in [e["job_name"] for e in log_events(log_stream, "job_watched")]


async def test_job_names_beyond_max_jobs_fold_into_other_logged_once_per_job(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    world = s.projects
    project = world.add_project(names=[f"job-{i}" for i in range(5)])
    jobs = world.jobs_of(project.project_id)
    d = Daemon(
        make_settings(sim.url, projects=[project.project_id], discovery_interval=0.05, max_jobs=3)
    )
    async with running(d):
        await next_round(d)
        plans = [s.new_build(job_id=j.job_id) for j in jobs for _ in range(2)]
        await next_round(d)
        assert all(p.record_id in d.watchlist.records for p in plans)
        s.clock.advance(max(p.end_time() for p in plans) - s.clock.now() + 1)
        await d.watchlist.wait_for(
            lambda: all(r.state.finished for r in d.watchlist.records.values())
        )
        samples = await scrape(d)
    per_job: Counter[str] = Counter()
    for (name, labels), v in samples.items():
        if name == "codearts_build_records_finished_total":
            per_job[dict(labels)["job_name"]] += int(v)
    assert sum(per_job.values()) == 10
    assert len([n for n in per_job if n != "_other"]) == 3
    assert per_job["_other"] == 4  # two jobs of two builds each
    assert value(samples, "stage_monitor_jobs_folded_total") == 2
    folded = log_events(log_stream, "job_folded")
    assert len(folded) == 2
    assert len({e["job_name"] for e in folded}) == 2
    stage_jobs = {
        dict(labels)["job_name"]
        for (name, labels) in samples
        if name == "codearts_build_stages_finished_total"
    }
    assert stage_jobs == set(per_job)


async def test_bad_inputs_are_logged_once_counted_and_isolated(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    world = s.projects
    good = world.add_project(names=["", "x" * 500, "fine", "left-out"])
    empty, long, fine, left_out = world.jobs_of(good.project_id)
    forbidden = world.add_project(names=["secret"])
    world.refused[forbidden.project_id] = 403
    missing = "0123456789abcdef0123456789abcdef"  # no such project: 404
    twice = world.add_project(names=["other"])
    twice.job_ids.append(fine.job_id)  # a second project lists the same job
    shaky = world.add_project(names=["shaky"])
    (shaky_job,) = world.jobs_of(shaky.project_id)
    world.brief_omit.add(left_out.build_project_id)
    projects = [good.project_id, forbidden.project_id, missing, twice.project_id, shaky.project_id]
    d = Daemon(make_settings(sim.url, projects=projects, discovery_interval=0.05))
    async with running(d):
        await next_round(d)
        # A page of the wrong shape: the project keeps its jobs, the others go on.
        s.faults.inject(Fault.WRONG_SHAPE, f"job-list:{shaky.project_id}", count=2)
        plans = [s.new_build(job_id=j.job_id) for j in (empty, long, fine, left_out, shaky_job)]
        await next_round(d, 4)
        assert shaky_job.job_id in discovery_of(d).jobs
        records = d.watchlist.records
        for p in plans:
            assert p.record_id in records
        assert Counter(r.labels["job_id"] for r in records.values()) == Counter(
            p.job_id for p in plans
        )  # no build watched twice
        assert records[plans[0].record_id].labels["job_name"] == ""
        assert records[plans[1].record_id].labels["job_name"] == "x" * 128
        samples = await scrape(d)

    problems = Counter(e["problem"] for e in log_events(log_stream, "discovery_problem"))
    assert problems == {
        "job_name_empty": 1,
        "job_name_too_long": 1,
        "project_forbidden": 1,
        "project_not_found": 1,
        "job_listed_twice": 1,
        "project_malformed": 1,
        "brief_missing_job": 1,
    }
    for problem, count in problems.items():
        assert value(samples, "stage_monitor_discovery_problems_total", problem=problem) == count
    assert (
        value(samples, "stage_monitor_discovery_fallbacks_total", reason="brief_missing_job") or 0
    ) >= 1


async def test_without_the_cheap_signal_or_the_brief_call_jobs_are_listed_one_by_one(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    world = s.projects
    project = world.add_project(names=["quiet", "plain"])
    quiet, plain = world.jobs_of(project.project_id)
    world.omit_signal.add(quiet.job_id)
    world.brief_status = 404
    world.job_list_shape = "result.job_list"  # the shape Huawei's Terraform provider reads
    d = Daemon(
        make_settings(
            sim.url,
            projects=[project.project_id],
            discovery_interval=0.05,
            job_refresh_interval=0.3,
        )
    )
    async with running(d):
        await next_round(d)
        a = s.new_build(job_id=quiet.job_id)
        b = s.new_build(job_id=plain.job_id)
        # Listed on its own within the refresh interval; the other in the next round.
        await d.watchlist.wait_for(lambda: a.record_id in d.watchlist.records)
        assert b.record_id in d.watchlist.records
        samples = await scrape(d)
    assert (
        value(samples, "stage_monitor_discovery_fallbacks_total", reason="signal_missing") or 0
    ) >= 1
    assert (
        value(samples, "stage_monitor_discovery_fallbacks_total", reason="brief_unavailable") or 0
    ) >= 1
    assert len(log_events(log_stream, "brief_records_unavailable")) >= 1
    missing = [
        e
        for e in log_events(log_stream, "discovery_problem")
        if e["problem"] == "job_signal_missing"
    ]
    assert len(missing) == 1


async def test_a_record_added_by_id_gets_its_job_labels_from_show_build_record(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    job = s.add_job("payments-service")
    plan = s.new_build(job_id=job.job_id, started_ago=5)
    broken = s.new_build(job_id=job.job_id, started_ago=5)
    s.faults.inject(Fault.HTTP_500, f"record-info:{broken.record_id}")
    d = Daemon(make_settings(sim.url, records=[plan.record_id, broken.record_id]))
    async with running(d):
        labeler = d.labeler
        assert labeler is not None
        await d.watchlist.wait_for(lambda: labeler.answered >= 2)
        await d.watchlist.wait_for(
            lambda: all(r.snapshot is not None for r in d.watchlist.records.values())
        )
        samples = await scrape(d)
    assert d.watchlist.records[plan.record_id].labels == {
        "job_name": "payments-service",
        "build_number": str(plan.build_number),
        "branch": "master",
    }
    assert d.watchlist.records[broken.record_id].labels == {}  # and it is still polled
    for _, labels in samples:
        if ("record_id", plan.record_id) in labels:
            assert ("job_name", "payments-service") in labels
    failed = log_events(log_stream, "record_info_failed")
    assert [e["record_id"] for e in failed] == [broken.record_id]
    requests = [r for r in s.requests if r.path.endswith("/info") and "/record/" in r.path]
    assert len(requests) == 2  # once per record


async def test_last_build_time_moving_at_the_end_and_build_project_ids_in_the_list(
    sim: SimServer,
) -> None:
    s = sim.sim
    world = s.projects
    world.last_build_time_at = "end"  # undocumented: either may be true
    world.include_build_project_id = True  # in the Job schema: no ShowJobInfo needed then
    project = world.add_project(names=["a", "b", "c"])
    jobs = world.jobs_of(project.project_id)
    d = Daemon(make_settings(sim.url, projects=[project.project_id], discovery_interval=0.05))
    async with running(d):
        await next_round(d)
        plans = [s.new_build(job_id=j.job_id) for j in jobs]
        await next_round(d)
        assert all(p.record_id in d.watchlist.records for p in plans)
        samples = await scrape(d)
    assert value(samples, "stage_monitor_discovery_requests_total", api="job_info") == 0
    assert (value(samples, "stage_monitor_discovery_requests_total", api="brief_records") or 0) >= 1
    assert [r for r in s.requests if r.path.endswith("/info") and "/job/" in r.path] == []


async def test_a_failed_brief_call_is_made_good_in_the_next_round(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    s = sim.sim
    world = s.projects
    project = world.add_project(names=["lbt-only"])
    (job,) = world.jobs_of(project.project_id)
    world.omit_is_finished.add(job.job_id)  # only last_build_time moves, once
    d = Daemon(make_settings(sim.url, projects=[project.project_id], discovery_interval=0.05))
    async with running(d):
        await next_round(d)
        s.faults.inject(Fault.HTTP_500, "brief", count=1)
        plan = s.new_build(job_id=job.job_id)
        with anyio.fail_after(10):  # without the retry, the build would never be seen
            await d.watchlist.wait_for(lambda: plan.record_id in d.watchlist.records)
    failed = [
        e for e in log_events(log_stream, "discovery_failed") if e.get("api") == "brief_records"
    ]
    assert [e["outcome"] for e in failed] == ["server_error"]
