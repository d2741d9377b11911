"""Pydantic models of the API's answers, lenient where the service is.

Everything may be null on a stage that has not started; unknown keys are
ignored (the service adds `check_stages`, `cascade=true` adds steps whose shape
no source documents).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from monitor.domain import RecordSnapshot, StageSnapshot
from monitor.domain.labels import clip_label


def parse_timestamp(value: Any) -> float | None:
    """Unix seconds from either shape the API uses, or None.

    Seen: `2024-09-24T03:18:49.000+00:00` and `2024-08-12T02:31:01+0800`.
    A timestamp in any other shape is dropped rather than failing the whole
    answer: the stage's status is worth more than one of its times.
    """
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Not documented; epoch milliseconds is the only plausible reading of a number.
        return float(value) / 1000.0
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None  # no offset: the instant is unknowable
    return parsed.timestamp()


class BuildStageRecord(BaseModel):
    """BuildStageRecord as documented; every field nullable."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    status: str | None = None
    status_code: int | None = None
    log_status: str | None = None
    # Kept as the API gives them, unparsed and unchecked: nothing downstream reads these
    # three, and parsing them cost a third of validating an answer.
    create_time: Any = None
    schedule_time: Any = None
    queued_time: Any = None
    start_time: float | None = None
    finish_time: float | None = None
    duration: int | None = None
    build_duration: int | None = None
    pending_duration: int | None = None
    build_record_id: str | None = None
    execution_id: str | None = None
    execution_stage_name: str | None = None
    display_name: str | None = None
    node_id: int | None = None
    sequence: int | None = None

    @field_validator("start_time", "finish_time", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> float | None:
        return parse_timestamp(value)


class FullStagesResult(BaseModel):
    model_config = ConfigDict(extra="ignore")

    build_stages: dict[str, BuildStageRecord] | None = None


class FullStagesResponse(BaseModel):
    """`GET /v1/record/{id}/full-stages` with HTTP 200."""

    model_config = ConfigDict(extra="ignore")

    status: str | None = None
    error: Any = None
    result: FullStagesResult | None = None
    error_code: str | None = None
    error_msg: str | None = None


def to_snapshot(record_id: str, body: FullStagesResponse, fetched_at: float) -> RecordSnapshot:
    """The domain snapshot of a successful answer, stages ordered by sequence then key."""
    raw = body.result.build_stages if body.result and body.result.build_stages else {}
    stages = []
    for fallback_seq, (key, rec) in enumerate(raw.items()):
        status = (rec.status or "NULL").strip().upper() or "NULL"
        stages.append(
            StageSnapshot(
                key=clip_label(key),
                display_name=clip_label(rec.display_name or key),
                status=clip_label(status),
                status_code=rec.status_code,
                duration_ms=rec.duration,
                build_duration_ms=rec.build_duration,
                pending_duration_ms=rec.pending_duration,
                start_time=rec.start_time,
                finish_time=rec.finish_time,
                sequence=rec.sequence if rec.sequence is not None else 10_000 + fallback_seq,
                stage_id=rec.id,
                # Parsed only where it is needed, so a running build costs nothing more.
                created_at=parse_timestamp(rec.create_time) if rec.start_time is None else None,
            )
        )
    stages.sort(key=lambda s: (s.sequence, s.key))
    return RecordSnapshot(record_id=record_id, stages=tuple(stages), fetched_at=fetched_at)
