"""Project discovery: watch every new build of every job of the projects in MONITOR_PROJECTS.

A round reads each project's job list (a page per 100 jobs: it is where the cheap
signal lives) and asks about the few jobs that signal names, many in one request:

- a job is *active* when its entry says `is_finished: false`, or its `last_build_time`
  differs from the last round's (whether it moves when a build starts or ends is not
  documented, so either is news), or the last look at it failed;
- the newest builds of active jobs come from one ListBriefRecord request per 100 jobs;
  new unfinished builds are watched, labelled job_id, job_name, build_number, branch.

Where the signal is missing (an entry without both fields), or the brief call is
refused (400/404) or leaves a job out, the job is listed on its own with
ListRecords instead: jobs without a signal every MONITOR_JOB_REFRESH_INTERVAL, the
others in the round they are active. Each of these is logged once and counted.

As with MONITOR_JOBS, a build finished when first seen, or seen in an earlier round, is
never watched. Jobs are matched by name against MONITOR_JOB_INCLUDE / MONITOR_JOB_EXCLUDE
(anchored); disabled jobs are skipped. Every request goes through the one client.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from monitor.codearts.client import CodeArtsClient
from monitor.codearts.errors import ApiError, CodeArtsError, NotFound
from monitor.codearts.jobs import job_info, recent_builds
from monitor.codearts.projects import (
    MAX_PAGE_SIZE,
    BriefBuild,
    ListedJob,
    brief_records,
    list_project_jobs,
)
from monitor.domain.ids import is_valid_record_id
from monitor.domain.labels import MAX_LABEL_VALUE, anchored_pattern, clip_label
from monitor.logging import get_logger
from monitor.tracking.discovery import DISCOVERY_SOURCE
from monitor.tracking.problems import Problems
from monitor.tracking.rounds import Rounds
from monitor.tracking.watchlist import Watchlist

BRIEF_LIMIT = 10  # builds per job and round; more starting within one round would be missed


class ProjectCounters(Protocol):
    """What project discovery counts (the metrics room implements it)."""

    def count_discovery_run(self, outcome: str) -> None: ...

    def count_discovered(self) -> None: ...

    def count_discovery_request(self, api: str) -> None: ...

    def count_discovery_problem(self, problem: str) -> None: ...

    def count_discovery_fallback(self, reason: str) -> None: ...

    def set_discovery_jobs(self, counts: dict[str, int]) -> None: ...


@dataclass(slots=True)
class _Job:
    job_id: str
    name: str
    project_id: str
    build_project_id: str | None
    last_build_time: float | None = None
    is_finished: bool | None = None
    seen: frozenset[str] = frozenset()  # record ids of its last listing
    next_fallback_at: float = 0.0
    changed: bool = False  # the list's signal says: look at this job this round
    retry: bool = False  # the last look failed: look again whatever the signal says


@dataclass(slots=True)
class _RoundPlan:
    brief: list[_Job] = field(default_factory=list)
    single: list[tuple[_Job, str]] = field(default_factory=list)  # (job, fallback reason)


class ProjectDiscovery(Rounds):
    """Finds new builds of every job of some projects, one round every `interval` seconds."""

    def __init__(
        self,
        client: CodeArtsClient,
        watchlist: Watchlist,
        metrics: ProjectCounters,
        project_ids: list[str],
        *,
        interval: float,
        refresh_interval: float,
        terminal_statuses: frozenset[str],
        include: str = ".*",
        exclude: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(metrics, interval, wall)
        self._client = client
        self._watchlist = watchlist
        self._metrics = metrics
        self.project_ids = list(project_ids)
        self._refresh = refresh_interval
        self._terminal = terminal_statuses
        self._include = anchored_pattern(include)
        self._exclude = anchored_pattern(exclude) if exclude else None
        self._clock = clock
        self.jobs: dict[str, _Job] = {}  # watched jobs by job id
        self.job_counts: dict[str, int] | None = None  # as of the last job list read
        self._brief_until = 0.0  # the brief call is not tried again before this
        self._log = get_logger("monitor.discovery")
        self._problems = Problems(metrics.count_discovery_problem, self._log)

    async def _round(self) -> None:
        plan = await self._read_projects()
        await self._resolve(plan)
        await self._ask_brief(plan)
        for job, reason in plan.single:
            await self._list_one(job, reason)

    def job_of_build_project(self, build_project_id: str) -> str | None:
        """The job id of a build project id, when discovery knows that job."""
        for job in self.jobs.values():
            if job.build_project_id == build_project_id:
                return job.job_id
        return None

    # --- the job lists --------------------------------------------------------------------

    async def _read_projects(self) -> _RoundPlan:
        now = self._clock()
        listed: dict[str, tuple[str, ListedJob]] = {}  # job id -> (project, entry)
        read_ok: set[str] = set()
        for project_id in self.project_ids:
            try:
                listing = await list_project_jobs(
                    self._client,
                    project_id,
                    on_request=lambda: self._metrics.count_discovery_request("job_list"),
                )
            except CodeArtsError as exc:
                self.count_run(exc.outcome)
                self._problems.report(
                    f"project_{exc.outcome}", project_id, str(exc), project_id=project_id
                )
                continue
            self.count_run("success")
            read_ok.add(project_id)
            self._problems.clear(project_id)
            self._log.debug("job_list_read", project_id=project_id, shape=listing.shape)
            self._problems.keep_only(
                "job_entry_invalid",
                project_id + "/",
                (f"{project_id}/{p}" for p in listing.problems),
            )
            for problem in listing.problems:
                self._problems.report(
                    "job_entry_invalid", f"{project_id}/{problem}", problem, project_id=project_id
                )
            for entry in listing.jobs:
                first = listed.get(entry.job_id)
                if first is not None and first[0] != project_id:
                    self._problems.report(
                        "job_listed_twice",
                        entry.job_id,
                        f"also listed by project {first[0]}; watched once, as a job of it",
                        project_id=project_id,
                        job_id=entry.job_id,
                    )
                    continue
                listed.setdefault(entry.job_id, (project_id, entry))
        return self._update_jobs(listed, read_ok, now)

    def _update_jobs(
        self, listed: dict[str, tuple[str, ListedJob]], read_ok: set[str], now: float
    ) -> _RoundPlan:
        counts = {"watched": 0, "excluded": 0, "disabled": 0}
        plan = _RoundPlan()
        wanted: set[str] = set()
        for job_id, (project_id, entry) in listed.items():
            if entry.disabled:
                counts["disabled"] += 1
                continue
            if not self._include.match(entry.job_name) or (
                self._exclude is not None and self._exclude.match(entry.job_name)
            ):
                counts["excluded"] += 1
                continue
            self._check_name(entry)
            wanted.add(job_id)
            job = self.jobs.get(job_id)
            if job is None:
                job = _Job(job_id, entry.job_name, project_id, entry.build_project_id)
                job.next_fallback_at = now
                self.jobs[job_id] = job
                self._log.info(
                    "job_watched",
                    job_id=job_id,
                    job_name=clip_label(entry.job_name),
                    project_id=project_id,
                )
                # First sight: only a running build is news; the rest is history.
                job.changed = entry.is_finished is False
            else:
                job.changed = (
                    job.retry
                    or entry.is_finished is False
                    or (
                        entry.last_build_time is not None
                        and entry.last_build_time != job.last_build_time
                    )
                )
            job.name, job.project_id = entry.job_name, project_id
            job.build_project_id = entry.build_project_id or job.build_project_id
            job.last_build_time, job.is_finished = entry.last_build_time, entry.is_finished
            if entry.is_finished is None and entry.last_build_time is None:
                self._problems.report(
                    "job_signal_missing",
                    job_id,
                    "job list entry has neither last_build_time nor is_finished; "
                    f"listed on its own every {self._refresh:g} s instead",
                    job_id=job_id,
                )
                if now >= job.next_fallback_at:
                    job.next_fallback_at = now + self._refresh
                    plan.single.append((job, "signal_missing"))
            elif job.changed:
                self._problems.clear(job_id, "job_signal_missing")
                plan.brief.append(job)
        for job_id, job in list(self.jobs.items()):
            # A project that could not be read keeps its jobs: an error is not a deletion.
            if job_id not in wanted and job.project_id in read_ok:
                del self.jobs[job_id]
                self._problems.clear(job_id)
                self._log.info("job_dropped", job_id=job_id, job_name=clip_label(job.name))
        counts["watched"] = len(self.jobs)
        self.job_counts = counts
        self._metrics.set_discovery_jobs(counts)
        return plan

    def _check_name(self, entry: ListedJob) -> None:
        if not entry.job_name:
            self._problems.report(
                "job_name_empty",
                entry.job_id,
                "job has an empty name; job_name stays empty",
                job_id=entry.job_id,
            )
        elif len(entry.job_name) > MAX_LABEL_VALUE:
            self._problems.report(
                "job_name_too_long",
                entry.job_id,
                f"job name of {len(entry.job_name)} characters is clipped to {MAX_LABEL_VALUE}",
                job_id=entry.job_id,
                job_name=clip_label(entry.job_name),
            )

    # --- asking about active jobs ------------------------------------------------------------

    async def _resolve(self, plan: _RoundPlan) -> None:
        """Learn the build project id (what the brief call takes) of active jobs, once each."""
        keep = []
        for job in plan.brief:
            if job.build_project_id is None:
                try:
                    self._metrics.count_discovery_request("job_info")
                    job.build_project_id = (
                        await job_info(self._client, job.job_id)
                    ).build_project_id
                except CodeArtsError as exc:
                    self.count_run(exc.outcome)
                    self._log.warning(
                        "discovery_failed", job_id=job.job_id, outcome=exc.outcome, error=str(exc)
                    )
                    job.retry = True
                    continue
            keep.append(job)
        plan.brief = keep

    async def _ask_brief(self, plan: _RoundPlan) -> None:
        if not plan.brief:
            return
        if self._clock() < self._brief_until:
            plan.single.extend((job, "brief_unavailable") for job in plan.brief)
            return
        for start in range(0, len(plan.brief), MAX_PAGE_SIZE):
            batch = plan.brief[start : start + MAX_PAGE_SIZE]
            ids = [j.build_project_id for j in batch if j.build_project_id]
            try:
                self._metrics.count_discovery_request("brief_records")
                answer = await brief_records(self._client, ids, BRIEF_LIMIT)
            except CodeArtsError as exc:
                self.count_run(exc.outcome)
                if isinstance(exc, NotFound) or (isinstance(exc, ApiError) and exc.status == 400):
                    self._brief_until = self._clock() + self._refresh
                    self._log.warning(
                        "brief_records_unavailable",
                        error=str(exc),
                        retry_in_seconds=self._refresh,
                        fallback="ListRecords per active job",
                    )
                    self._metrics.count_discovery_problem("brief_unavailable")
                    plan.single.extend((j, "brief_unavailable") for j in plan.brief[start:])
                    return
                self._log.warning(
                    "discovery_failed", api="brief_records", outcome=exc.outcome, error=str(exc)
                )
                for job in batch:
                    job.retry = True
                continue
            self.count_run("success")
            for job in batch:
                builds = answer.get(job.build_project_id or "")
                if builds is None:
                    self._problems.report(
                        "brief_missing_job",
                        job.job_id,
                        "brief records answer left this job out; listed on its own",
                        job_id=job.job_id,
                    )
                    plan.single.append((job, "brief_missing_job"))
                    continue
                self._problems.clear(job.job_id, "brief_missing_job")
                await self._take(job, builds)

    async def _list_one(self, job: _Job, reason: str) -> None:
        self._metrics.count_discovery_fallback(reason)
        try:
            if job.build_project_id is None:
                self._metrics.count_discovery_request("job_info")
                job.build_project_id = (await job_info(self._client, job.job_id)).build_project_id
            self._metrics.count_discovery_request("records")
            listed = await recent_builds(self._client, job.build_project_id, BRIEF_LIMIT)
        except CodeArtsError as exc:
            self.count_run(exc.outcome)
            self._log.warning(
                "discovery_failed", job_id=job.job_id, outcome=exc.outcome, error=str(exc)
            )
            job.retry = True
            return
        self.count_run("success")
        await self._take(job, [BriefBuild(b.record_id, b.status, b.build_no, None) for b in listed])

    async def _take(self, job: _Job, builds: Iterable[BriefBuild]) -> None:
        """Watch the builds that are new and unfinished; remember all as seen."""
        builds = list(builds)
        job.retry = False
        added = []
        for build in builds:
            rid = build.record_id
            if rid in job.seen or self._watchlist.known(rid) or build.status in self._terminal:
                continue
            if not is_valid_record_id(rid):
                self._problems.report(
                    "record_id_invalid", rid[:80], "not a record id", job_id=job.job_id
                )
                continue
            _, created = await self._watchlist.add(
                rid, self._labels(job, build), source=DISCOVERY_SOURCE
            )
            if created:
                added.append(rid)
                self._metrics.count_discovered()
        job.seen = frozenset(b.record_id for b in builds)
        if added:
            self._log.info("builds_discovered", job_id=job.job_id, record_ids=added)

    @staticmethod
    def _labels(job: _Job, build: BriefBuild) -> dict[str, str]:
        labels = {"job_id": job.job_id, "job_name": clip_label(job.name)}
        if build.build_no:
            labels["build_number"] = clip_label(build.build_no)
        if build.branch:
            labels["branch"] = clip_label(build.branch)
        return labels
