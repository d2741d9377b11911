"""One record as one SQLite row and back (plain functions, so they are easy to test)."""

from __future__ import annotations

import json
from typing import Any

from monitor.domain import RecordSnapshot, RecordState, StageSnapshot
from monitor.store.base import StoredRecord

Row = tuple[Any, ...]
_STAGE_FIELDS = StageSnapshot.__slots__


def encode(record: StoredRecord) -> Row:
    """The row that stores `record`."""
    snapshot = None
    if record.snapshot is not None:
        snapshot = json.dumps(
            {
                "fetched_at": record.snapshot.fetched_at,
                "stages": [
                    {f: getattr(s, f) for f in _STAGE_FIELDS} for s in record.snapshot.stages
                ],
            },
            separators=(",", ":"),
        )
    return (
        record.record_id,
        record.state.value,
        record.source,
        json.dumps(record.labels, sort_keys=True, separators=(",", ":")),
        record.added_at,
        record.finished_at,
        record.result,
        record.error,
        json.dumps(sorted(record.counted), separators=(",", ":")),
        snapshot,
    )


def decode(row: Row) -> StoredRecord:
    """The record a row stores; raises ValueError/TypeError/KeyError on a damaged row."""
    (record_id, state, source, labels, added_at, finished_at, result, error, counted, snap) = row
    labels_d = json.loads(labels)
    if not isinstance(labels_d, dict):
        raise ValueError("labels is not an object")
    snapshot = None
    if snap is not None:
        data = json.loads(snap)
        stages = tuple(
            StageSnapshot(**{f: s[f] for f in _STAGE_FIELDS if f in s}) for s in data["stages"]
        )
        snapshot = RecordSnapshot(record_id, stages, float(data["fetched_at"]))
    return StoredRecord(
        record_id=str(record_id),
        state=RecordState(state),
        labels={str(k): str(v) for k, v in labels_d.items()},
        source=str(source),
        added_at=float(added_at),
        finished_at=None if finished_at is None else float(finished_at),
        result=result,
        error=error,
        snapshot=snapshot,
        counted=frozenset(str(k) for k in json.loads(counted)),
    )
