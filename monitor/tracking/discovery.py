"""Job discovery: watch every new build of the jobs in MONITOR_JOBS from the moment it starts.

Each round lists the most recent builds of every job (see monitor/codearts/jobs.py
for which API and why) and adds those that are neither finished nor seen before,
labelled `job_id` and `job_name`. Builds already finished when first seen are
history: they are never added, and neither is a build the watchlist knows: a
watched one, or a retired one whose tombstone is still kept (so a finished build
still on the list is not given a second life). What discovery itself remembers
is only the last page of each job (so a record someone deleted through the
admin API while it runs stays deleted): its memory does not grow with history.

Requests go through the daemon's one API client, so they share its rate budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from monitor.codearts.client import CodeArtsClient
from monitor.codearts.errors import CodeArtsError
from monitor.codearts.jobs import JobInfo, job_info, recent_builds
from monitor.domain.ids import is_valid_record_id
from monitor.domain.labels import clip_label
from monitor.logging import get_logger
from monitor.tracking.rounds import Rounds
from monitor.tracking.watchlist import Watchlist

DISCOVERY_SOURCE = "discovery"
# Builds read per job and round. The list's order is not documented; we read it
# as newest first (as the console shows it), so more than this many builds of
# one job starting within one interval would be missed.
PAGE_SIZE = 20


class DiscoveryCounters(Protocol):
    """What discovery counts (the metrics room implements it)."""

    def count_discovery_run(self, outcome: str) -> None: ...

    def count_discovered(self) -> None: ...

    def count_discovery_request(self, api: str) -> None: ...


class Discovery(Rounds):
    """Finds new builds of a fixed set of jobs, one round every `interval` seconds."""

    def __init__(
        self,
        client: CodeArtsClient,
        watchlist: Watchlist,
        metrics: DiscoveryCounters,
        job_ids: list[str],
        *,
        interval: float,
        terminal_statuses: frozenset[str],
        page_size: int = PAGE_SIZE,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(metrics, interval, wall)
        self._client = client
        self._watchlist = watchlist
        self._metrics = metrics
        self.job_ids = list(job_ids)
        self._terminal = terminal_statuses
        self._page_size = page_size
        self._info: dict[str, JobInfo] = {}
        self._seen: dict[str, set[str]] = {}  # job id -> the ids of its last listed page
        self._log = get_logger("monitor.discovery")

    async def _round(self) -> None:
        """Every job once; a job that fails is retried next round."""
        for job_id in self.job_ids:
            await self._discover(job_id)

    async def _discover(self, job_id: str) -> None:
        try:
            info = self._info.get(job_id)
            if info is None:
                self._metrics.count_discovery_request("job_info")
                info = await job_info(self._client, job_id)
                self._info[job_id] = info
            self._metrics.count_discovery_request("records")
            builds = await recent_builds(self._client, info.build_project_id, self._page_size)
        except CodeArtsError as exc:
            self._info.pop(job_id, None)  # ask for the job again next round
            self.count_run(exc.outcome)
            self._log.warning(
                "discovery_failed", job_id=job_id, outcome=exc.outcome, error=str(exc)
            )
            return
        seen = self._seen.get(job_id, set())
        labels = {"job_id": job_id}
        if info.job_name:
            labels["job_name"] = clip_label(info.job_name)
        added = []
        for build in builds:
            rid = build.record_id
            if rid in seen or self._watchlist.known(rid) or build.status in self._terminal:
                continue
            if not is_valid_record_id(rid):
                self._log.warning("discovered_id_invalid", job_id=job_id, record_id=rid[:80])
                continue
            _, created = await self._watchlist.add(rid, labels, source=DISCOVERY_SOURCE)
            if created:
                added.append(rid)
                self._metrics.count_discovered()
        self._seen[job_id] = {b.record_id for b in builds}
        self.count_run("success")
        if added:
            self._log.info("builds_discovered", job_id=job_id, record_ids=added, labels=labels)
