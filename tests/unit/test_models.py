"""The API models accept what the reference documents and nothing breaks on the unknown."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from monitor.codearts.models import FullStagesResponse, parse_timestamp, to_snapshot

EXAMPLE = Path(__file__).parent.parent / "data" / "full_stages_example.json"
RID = "94baa8ec-fd3f-4cae-81af-b24385a7220f"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-09-24T03:18:49.000+00:00", datetime.fromisoformat("2024-09-24T03:18:49+00:00")),
        ("2024-08-12T02:31:01+0800", datetime.fromisoformat("2024-08-11T18:31:01+00:00")),
        ("2024-08-12T02:31:01.250+08:00", datetime.fromisoformat("2024-08-11T18:31:01.25+00:00")),
    ],
)
def test_both_timestamp_shapes_parse_to_the_same_instant(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected.timestamp()


@pytest.mark.parametrize("text", [None, "", "yesterday", "2024-08-12T02:31:01", 12.5j])
def test_unusable_timestamps_become_unknown(text: object) -> None:
    assert parse_timestamp(text) is None


def test_documented_example_parses_with_check_stages_and_nulls() -> None:
    body = FullStagesResponse.model_validate_json(EXAMPLE.read_bytes())
    snap = to_snapshot(RID, body, fetched_at=0.0)
    assert [s.key for s in snap.stages] == ["initial", "stage1", "stage2", "stage3", "final"]
    initial = snap.stages[0]
    assert (initial.status, initial.status_code) == ("ABORTED", 8)
    assert (initial.duration_ms, initial.build_duration_ms, initial.pending_duration_ms) == (
        10000,
        9000,
        1000,
    )
    assert initial.start_time == datetime.fromisoformat("2024-09-24T03:18:51+00:00").timestamp()
    assert snap.stages[1].display_name == "Cache Check"


def test_null_fields_unknown_keys_and_unknown_status_are_kept() -> None:
    raw = json.loads(EXAMPLE.read_text())
    stage = raw["result"]["build_stages"]["stage1"]
    stage.update(
        status="Waiting_For_Agent",
        status_code=None,
        start_time=None,
        finish_time=None,
        duration=None,
        display_name=None,
        sequence=None,
        steps=[{"whatever": 1}],
    )
    raw["result"]["surprise"] = {"x": 1}
    snap = to_snapshot(RID, FullStagesResponse.model_validate(raw), 0.0)
    s1 = snap.stage("stage1")
    assert s1 is not None
    assert s1.status == "WAITING_FOR_AGENT"
    assert s1.status_code is None and s1.duration_ms is None and s1.start_time is None
    assert s1.display_name == "stage1"  # falls back to the key
    assert snap.stages[-1].key == "stage1"  # no sequence: ordered after the numbered ones
