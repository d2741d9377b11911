"""Domain snapshots: what the monitor knows about a record at one moment.

Plain frozen dataclasses so the tracker can compare two of them cheaply and the
collector can render them without touching the API models.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


def ms_to_seconds(value: int | None) -> float | None:
    """The API's milliseconds as seconds (None stays None)."""
    return None if value is None else value / 1000.0


class RecordState(StrEnum):
    """Where a watched record stands. Every state is exported, zeros included."""

    ACTIVE = "active"  # being polled
    COMPLETE = "complete"  # every stage terminal
    EXPIRED = "expired"  # watched longer than MONITOR_MAX_WATCH without finishing
    ERROR = "error"  # cannot be polled at all (e.g. not a valid record id)
    NOT_FOUND = "not_found"  # the service said 404 several times in a row
    FORBIDDEN = "forbidden"  # the service said 403

    @property
    def finished(self) -> bool:
        return self is not RecordState.ACTIVE


@dataclass(frozen=True, slots=True)
class StageSnapshot:
    """One stage as the API last described it. Durations in milliseconds, as given."""

    key: str
    display_name: str
    status: str  # upper-cased; "NULL" when the API gave none
    status_code: int | None
    duration_ms: int | None
    build_duration_ms: int | None
    pending_duration_ms: int | None
    start_time: float | None  # unix seconds
    finish_time: float | None
    sequence: int
    # The stage's own `id` (a trace's task run id), and `create_time` where the stage
    # has no `start_time`: a build none of whose stages started begins at its creation.
    stage_id: str | None = None
    created_at: float | None = None


@dataclass(frozen=True, slots=True)
class RecordSnapshot:
    """Every stage of one record, ordered by sequence."""

    record_id: str
    stages: tuple[StageSnapshot, ...]
    fetched_at: float  # unix seconds

    def stage(self, key: str) -> StageSnapshot | None:
        for s in self.stages:
            if s.key == key:
                return s
        return None
