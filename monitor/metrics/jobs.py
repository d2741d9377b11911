"""Bounded `job_name` values for the aggregates: at most MONITOR_MAX_JOBS per process.

Builds of a job beyond that many are counted under `job_name="_other"`, logged once
per job (`job_folded`) and counted in `stage_monitor_jobs_folded_total`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from monitor.domain.labels import clip_label
from monitor.logging import get_logger

OTHER_JOBS = "_other"
DEFAULT_MAX_JOBS = 500


class JobNames:
    """Decides the `job_name` label value of a record's aggregates."""

    def __init__(
        self,
        max_jobs: int = DEFAULT_MAX_JOBS,
        labels_of: Callable[[str], Mapping[str, str] | None] = lambda _: None,
        on_folded: Callable[[], None] = lambda: None,
    ) -> None:
        self.max_jobs = max_jobs
        self._labels_of = labels_of
        self._on_folded = on_folded
        self._admitted: set[str] = set()
        self._folded: set[str] = set()
        self._log = get_logger("monitor.metrics")

    def of_record(self, record_id: str) -> str:
        labels = self._labels_of(record_id) or {}
        return self.fold(labels.get("job_name", ""), record_id)

    def fold(self, name: str, record_id: str = "") -> str:
        name = clip_label(name)
        if not name or name in self._admitted:
            return name
        if len(self._admitted) < self.max_jobs:
            self._admitted.add(name)
            return name
        if name not in self._folded:
            # Remembered so it is logged once; bounded so it cannot grow without end.
            if len(self._folded) < 10 * self.max_jobs + 1000:
                self._folded.add(name)
            self._on_folded()
            self._log.warning(
                "job_folded",
                job_name=name,
                record_id=record_id,
                max_jobs=self.max_jobs,
                counted_as=OTHER_JOBS,
            )
        return OTHER_JOBS
