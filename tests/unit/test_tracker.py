"""The tracker decides, from two snapshots, what is logged and counted: exactly once."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from monitor.codearts.models import FullStagesResponse, to_snapshot
from monitor.domain import RecordSnapshot, StageSnapshot
from monitor.settings import DEFAULT_TERMINAL_STATUSES, Settings
from monitor.tracking.tracker import observe, record_duration, record_result

TERMINAL = frozenset(DEFAULT_TERMINAL_STATUSES)
RID = "94baa8ec-fd3f-4cae-81af-b24385a7220f"
EXAMPLE = Path(__file__).parent.parent / "data" / "full_stages_example.json"


def stage(key: str, seq: int, status: str, **kw: object) -> StageSnapshot:
    base = StageSnapshot(
        key=key,
        display_name=key.title(),
        status=status,
        status_code=None,
        duration_ms=1000,
        build_duration_ms=800,
        pending_duration_ms=200,
        start_time=100.0 + seq,
        finish_time=110.0 + seq if status in TERMINAL else None,
        sequence=seq,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def snap(*stages: StageSnapshot) -> RecordSnapshot:
    return RecordSnapshot(RID, tuple(stages), 0.0)


def test_first_sight_is_a_transition_from_nothing() -> None:
    obs = observe(None, snap(stage("initial", 0, "RUNNING")), frozenset(), TERMINAL)
    assert [(t.from_status, t.to_status) for t in obs.transitions] == [(None, "RUNNING")]
    assert obs.newly_finished == () and obs.completed is None


def test_unchanged_snapshot_yields_nothing() -> None:
    s = snap(stage("initial", 0, "SUCCESS"), stage("stage1", 1, "RUNNING"))
    obs = observe(s, s, frozenset({"initial"}), TERMINAL)
    assert obs.transitions == () and obs.newly_finished == ()


def test_finished_stage_is_counted_once_even_if_seen_again() -> None:
    old = snap(stage("initial", 0, "RUNNING"))
    new = snap(stage("initial", 0, "SUCCESS"))
    first = observe(old, new, frozenset(), TERMINAL)
    assert [s.key for s in first.newly_finished] == ["initial"]
    # A replay (restart, duplicate answer) with the stage already counted:
    again = observe(None, new, frozenset({"initial"}), TERMINAL)
    assert again.newly_finished == ()


def test_lower_case_statuses_from_the_api_and_the_config_are_terminal() -> None:
    # One doc spells the status "timeout"; the terminal set may be configured in any case.
    body = json.loads(EXAMPLE.read_text())
    for raw in body["result"]["build_stages"].values():
        raw["status"] = "success"
    body["result"]["build_stages"]["stage2"]["status"] = "timeout"
    snapshot = to_snapshot(RID, FullStagesResponse.model_validate(body), 0.0)
    assert {s.status for s in snapshot.stages} == {"SUCCESS", "TIMEOUT"}
    terminal = Settings(auth_token="x" * 20, terminal_statuses="success,timeout").terminal_statuses
    obs = observe(None, snapshot, frozenset(), terminal)
    assert obs.completed is not None and obs.completed.result == "TIMEOUT"
    assert len(obs.newly_finished) == len(snapshot.stages)


def test_unknown_status_is_in_progress() -> None:
    obs = observe(None, snap(stage("initial", 0, "QUEUED_SOMEWHERE")), frozenset(), TERMINAL)
    assert obs.newly_finished == () and obs.completed is None


def test_result_is_first_non_success_by_sequence() -> None:
    s = snap(
        stage("initial", 0, "SUCCESS"),
        stage("stage1", 1, "FAILURE"),
        stage("stage2", 2, "ABORTED"),
    )
    assert record_result(s) == "FAILURE"
    assert record_result(snap(stage("initial", 0, "SUCCESS"))) == "SUCCESS"


def test_record_without_stages_is_not_complete() -> None:
    assert observe(None, snap(), frozenset(), TERMINAL).completed is None


def test_record_duration_spans_first_start_to_last_finish() -> None:
    s = snap(stage("initial", 0, "SUCCESS"), stage("stage1", 1, "SUCCESS"))
    assert record_duration(s) == 111.0 - 100.0
    no_times = snap(stage("initial", 0, "SUCCESS", start_time=None, finish_time=None))
    assert record_duration(no_times) == 1.0
