"""Gauges of what history leaves: tombstones kept, and the state file's size."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class HistoryGauges(Collector):
    """Read at scrape time from the watchlist and the store."""

    def __init__(self, retired: Callable[[], int], state_bytes: Callable[[], int]) -> None:
        self._retired = retired
        self._state_bytes = state_bytes

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "stage_monitor_retired_records",
            "Tombstones: records retired after MONITOR_RETENTION and not yet forgotten "
            "(MONITOR_FORGET_AFTER); their ids are not watched again.",
            value=self._retired(),
        )
        yield GaugeMetricFamily(
            "stage_monitor_state_file_bytes",
            "Size of the state file and its write-ahead log (0 for :memory:).",
            value=self._state_bytes(),
        )
