"""Answers keep their stage times, and times the monitor does not use can never fail an answer."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from monitor.codearts.models import FullStagesResponse, to_snapshot

EXAMPLE = Path(__file__).parent.parent / "data" / "full_stages_example.json"


def test_documented_example_keeps_start_and_finish_times() -> None:
    body = FullStagesResponse.model_validate_json(EXAMPLE.read_bytes())
    snap = to_snapshot("94baa8ec-fd3f-4cae-81af-b24385a7220f", body, 0.0)
    initial = snap.stage("initial")
    assert initial is not None
    assert initial.start_time == datetime.fromisoformat("2024-09-24T03:18:51+00:00").timestamp()
    assert initial.finish_time == datetime.fromisoformat("2024-09-24T03:18:59+00:00").timestamp()


def test_both_timestamp_shapes_parse_and_unused_times_of_any_shape_are_accepted() -> None:
    data = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    stage = data["result"]["build_stages"]["initial"]
    stage["start_time"] = "2024-08-12T02:31:01+0800"
    stage["create_time"] = {"unexpected": "shape"}
    stage["queued_time"] = 1_723_400_000_000
    stage["schedule_time"] = True
    body = FullStagesResponse.model_validate_json(json.dumps(data))
    initial = to_snapshot("94baa8ec-fd3f-4cae-81af-b24385a7220f", body, 0.0).stage("initial")
    assert initial is not None
    assert initial.start_time == datetime.fromisoformat("2024-08-11T18:31:01+00:00").timestamp()
