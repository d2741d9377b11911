"""Job labels for records added by id alone (config, watchlist file, admin API).

Such a record is asked about once with ShowBuildRecord (`GET /v1/record/{id}/info`):
its `display_name` is the job's name, with `build_no` and `branch`. The labels are
kept with the record in the state store, so a restart does not ask again. A failed
answer leaves the labels as they were and never holds up polling; it is not retried
in this process (at most once more after a restart).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

import anyio
from anyio.abc import TaskStatus

from monitor.codearts.client import CodeArtsClient
from monitor.codearts.errors import CodeArtsError
from monitor.codearts.projects import build_record_info
from monitor.domain import RecordState
from monitor.domain.labels import JOB_LABELS, clip_label
from monitor.logging import get_logger
from monitor.tracking.watchlist import WatchedRecord, Watchlist


class LabelCounters(Protocol):
    def count_discovery_request(self, api: str) -> None: ...


class RecordLabeler:
    """Asks ShowBuildRecord once per record that has no `job_name`, in the background."""

    def __init__(
        self,
        client: CodeArtsClient,
        watchlist: Watchlist,
        metrics: LabelCounters,
        job_of_build_project: Callable[[str], str | None] = lambda _: None,
    ) -> None:
        self._client = client
        self._watchlist = watchlist
        self._metrics = metrics
        self._job_of = job_of_build_project
        self._queue: deque[str] = deque()
        self._asked: set[str] = set()
        self._wake = anyio.Event()
        self._log = get_logger("monitor.labels")
        self.answered = 0  # lookups finished, successful or not (tests await it)

    def on_added(self, rec: WatchedRecord) -> None:
        """The watchlist's on_added hook: queue records that lack job labels."""
        if "job_name" in rec.labels or rec.record_id in self._asked:
            return
        self._asked.add(rec.record_id)
        self._queue.append(rec.record_id)
        self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            while not self._queue:
                await self._wake.wait()
                self._wake = anyio.Event()
            await self._label(self._queue.popleft())
            if len(self._asked) > 2 * len(self._watchlist.records) + 1000:
                self._asked &= set(self._watchlist.records)  # nothing grows with builds seen

    async def _label(self, record_id: str) -> None:
        rec = self._watchlist.records.get(record_id)
        if rec is None or rec.state is RecordState.ERROR or "job_name" in rec.labels:
            self.answered += 1
            return
        try:
            self._metrics.count_discovery_request("record_info")
            info = await build_record_info(self._client, record_id)
        except CodeArtsError as exc:
            self.answered += 1
            labels = {"labels": dict(rec.labels)} if rec.labels else {}
            self._log.warning(
                "record_info_failed",
                record_id=record_id,
                outcome=exc.outcome,
                error=str(exc),
                **labels,
            )
            return
        found: dict[str, str] = {}
        job_id = self._job_of(info.build_project_id) if info.build_project_id else None
        if job_id:
            found["job_id"] = job_id
        if info.job_name:
            found["job_name"] = clip_label(info.job_name)
        if info.build_no:
            found["build_number"] = clip_label(info.build_no)
        if info.branch:
            found["branch"] = clip_label(info.branch)
        rec = self._watchlist.records.get(record_id)
        if rec is not None and found:
            # Labels the user gave win over what the API says.
            await self._watchlist.add(record_id, {**found, **rec.labels}, source=rec.source)
            self._log.info("record_labelled", record_id=record_id, labels=found)
        self.answered += 1


__all__ = ["JOB_LABELS", "RecordLabeler"]
