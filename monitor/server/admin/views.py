"""A watched record as the API shows it: the one place a record becomes JSON."""

from __future__ import annotations

from typing import Any

from monitor.domain import RecordSnapshot, ms_to_seconds
from monitor.server.admin.models import (
    CurrentStage,
    Record,
    RecordDetail,
    Stage,
    StageSummary,
)
from monitor.tracking.watchlist import WatchedRecord


def stage_summary(snapshot: RecordSnapshot | None, terminal: frozenset[str]) -> StageSummary:
    """How many stages, by status, and the first one not finished yet."""
    if snapshot is None:
        return StageSummary(total=0, by_status={}, current=None, fetched_at=None)
    by_status: dict[str, int] = {}
    current = None
    for s in snapshot.stages:
        by_status[s.status] = by_status.get(s.status, 0) + 1
        if current is None and s.status not in terminal:
            current = CurrentStage(build_stage=s.key, display_name=s.display_name, status=s.status)
    return StageSummary(
        total=len(snapshot.stages),
        by_status=by_status,
        current=current,
        fetched_at=snapshot.fetched_at,
    )


def record_json(rec: WatchedRecord, terminal: frozenset[str], *, detail: bool) -> dict[str, Any]:
    """The record's JSON: a Record, or with `detail` a RecordDetail with every stage."""
    fields: dict[str, Any] = {
        "record_id": rec.record_id,
        "state": rec.state,
        "source": rec.source,
        "labels": dict(rec.labels),
        "added_at": rec.added_at,
        "finished_at": rec.finished_at,
        "result": rec.result,
        "error": rec.error,
        "stage_summary": stage_summary(rec.snapshot, terminal),
    }
    if not detail:
        return Record(**fields).model_dump(mode="json")
    stages = rec.snapshot.stages if rec.snapshot is not None else ()
    fields["stages"] = [
        Stage(
            build_stage=s.key,
            display_name=s.display_name,
            status=s.status,
            status_code=s.status_code,
            sequence=s.sequence,
            duration_seconds=ms_to_seconds(s.duration_ms),
            build_duration_seconds=ms_to_seconds(s.build_duration_ms),
            pending_seconds=ms_to_seconds(s.pending_duration_ms),
            start_time=s.start_time,
            finish_time=s.finish_time,
        )
        for s in stages
    ]
    return RecordDetail(**fields).model_dump(mode="json")
