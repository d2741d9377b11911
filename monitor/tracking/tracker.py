"""What changed: pure functions from two snapshots to events.

Pure on purpose: "each transition logged once, each finished stage counted once"
is decided here from (old snapshot, new snapshot, stages already counted), so it
can be tested without a clock, a network or a store.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from monitor.domain import RecordSnapshot, StageSnapshot, ms_to_seconds

SUCCESS = "SUCCESS"


@dataclass(frozen=True, slots=True)
class Transition:
    """A stage appeared or changed status."""

    record_id: str
    build_stage: str
    display_name: str
    from_status: str | None
    to_status: str
    status_code: int | None
    duration_seconds: float | None
    pending_seconds: float | None


@dataclass(frozen=True, slots=True)
class StageFinished:
    """A stage reached a terminal status and is counted now, once."""

    record_id: str
    stage: StageSnapshot


@dataclass(frozen=True, slots=True)
class PollDone:
    """One poll of a record ended; `outcome` is "success" or the error's outcome."""

    record_id: str
    outcome: str


@dataclass(frozen=True, slots=True)
class RecordCompleted:
    """Every stage of a record reached a terminal status."""

    record_id: str
    result: str
    duration_seconds: float | None


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything one new snapshot means, relative to what was known before."""

    transitions: tuple[Transition, ...]
    newly_finished: tuple[StageSnapshot, ...]  # terminal stages never counted before
    completed: RecordCompleted | None  # set when the record is complete now


def is_terminal(stage: StageSnapshot, terminal: AbstractSet[str]) -> bool:
    return stage.status in terminal


def record_is_complete(snapshot: RecordSnapshot, terminal: AbstractSet[str]) -> bool:
    """A record is complete when it has stages and every one of them is terminal."""
    return bool(snapshot.stages) and all(s.status in terminal for s in snapshot.stages)


def record_result(snapshot: RecordSnapshot) -> str:
    """SUCCESS if every stage succeeded, else the first non-success status by sequence."""
    for s in snapshot.stages:  # already ordered by sequence
        if s.status != SUCCESS:
            return s.status
    return SUCCESS


def record_duration(snapshot: RecordSnapshot) -> float | None:
    """Wall-clock span from the earliest stage start to the latest finish.

    Falls back to the sum of stage durations when the times are not all known.
    """
    starts = [s.start_time for s in snapshot.stages if s.start_time is not None]
    finishes = [s.finish_time for s in snapshot.stages if s.finish_time is not None]
    if starts and finishes and len(finishes) == len(snapshot.stages):
        return max(0.0, max(finishes) - min(starts))
    durations = [s.duration_ms for s in snapshot.stages if s.duration_ms is not None]
    return sum(durations) / 1000.0 if durations else None


def observe(
    old: RecordSnapshot | None,
    new: RecordSnapshot,
    counted: AbstractSet[str],
    terminal: AbstractSet[str],
) -> Observation:
    """Compare a new snapshot with the previous one.

    `counted` holds the keys of stages already counted as finished; a stage is in
    `newly_finished` only if it is terminal now and not in `counted`, so replaying
    the same snapshot (or a restart) never counts it again.
    """
    before = {s.key: s for s in old.stages} if old is not None else {}
    transitions = []
    finished = []
    for stage in new.stages:
        prev = before.get(stage.key)
        if prev is None or prev.status != stage.status:
            transitions.append(
                Transition(
                    record_id=new.record_id,
                    build_stage=stage.key,
                    display_name=stage.display_name,
                    from_status=prev.status if prev is not None else None,
                    to_status=stage.status,
                    status_code=stage.status_code,
                    duration_seconds=ms_to_seconds(stage.duration_ms),
                    pending_seconds=ms_to_seconds(stage.pending_duration_ms),
                )
            )
        if stage.status in terminal and stage.key not in counted:
            finished.append(stage)
    completed = None
    if record_is_complete(new, terminal):
        completed = RecordCompleted(new.record_id, record_result(new), record_duration(new))
    return Observation(tuple(transitions), tuple(finished), completed)
