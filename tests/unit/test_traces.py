"""Spans from a snapshot, the OTLP settings and the trace outbox: no sockets."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from monitor.cli import main
from monitor.domain import RecordSnapshot, StageSnapshot
from monitor.settings import ConfigError, load_settings
from monitor.store.outbox import MemoryOutbox, SqliteOutbox, TraceOutbox
from monitor.store.sqlite import SqliteStore
from monitor.traces.config import parse_headers, shown_url, traces_url
from monitor.traces.spans import BuildTrace, build_spans, pipeline_result, span_id, trace_id

RID = "94baa8ec-fd3f-4cae-81af-b24385a7220f"
SECRET = "hdr-Value-Never-Shown-7731"


def _stage(
    key: str,
    seq: int,
    status: str,
    start: float | None,
    finish: float | None,
    pending_ms: int | None = 0,
    duration_ms: int | None = 1000,
    created: float | None = None,
) -> StageSnapshot:
    return StageSnapshot(
        key,
        key.upper(),
        status,
        5,
        duration_ms,
        duration_ms,
        pending_ms,
        start,
        finish,
        seq,
        stage_id=f"id-{key}",
        created_at=created,
    )


def _attrs(span: Span) -> dict[str, object]:
    out: dict[str, object] = {}
    for a in span.attributes:
        which = a.value.WhichOneof("value")
        if which == "array_value":
            out[a.key] = [v.string_value for v in a.value.array_value.values]
        elif which is not None:
            out[a.key] = getattr(a.value, which)
    return out


def test_the_same_build_gives_the_same_ids_and_spans() -> None:
    snap = RecordSnapshot(
        RID,
        (
            _stage("initial", 0, "SUCCESS", 100.123, 101.5, pending_ms=2500),
            _stage("stage1", 1, "FAILURE", 101.5, 130.0),
            _stage("final", 2, "ABORTED", 130.0, 130.0, duration_ms=0),
        ),
        200.0,
    )
    build = BuildTrace(RID, snap, "FAILURE", {"job_name": "api", "build_number": "42"})
    first, again = build_spans(build), build_spans(build)
    assert [s.SerializeToString() for s in first] == [s.SerializeToString() for s in again]
    root, wait, initial, stage1 = first
    assert root.trace_id == uuid.UUID(RID).bytes
    assert root.name == "BUILD api" and root.kind == Span.SPAN_KIND_SERVER
    assert root.status.code == root.status.STATUS_CODE_ERROR
    assert _attrs(root) == {
        "cicd.pipeline.run.id": RID,
        "cicd.pipeline.result": "failure",
        "cicd.pipeline.name": "api",
        "codearts.build.number": 42,
        "codearts.stages.not_run": ["FINAL"],  # aborted with zero durations: never ran
    }
    assert (root.start_time_unix_nano, root.end_time_unix_nano) == (
        100_123_000_000,
        130_000_000_000,
    )
    assert wait.name == "wait INITIAL"
    assert (wait.start_time_unix_nano, wait.end_time_unix_nano) == (97_623_000_000, 100_123_000_000)
    assert initial.parent_span_id == root.span_id == wait.parent_span_id
    assert _attrs(stage1)["cicd.pipeline.task.run.result"] == "failure"
    assert len({s.span_id for s in first}) == 4


def test_a_build_no_stage_of_which_started_begins_at_its_creation() -> None:
    snap = RecordSnapshot(RID, (_stage("initial", 0, "ABORTED", None, None, created=50.0),), 60.0)
    (root,) = build_spans(BuildTrace(RID, snap, "ABORTED", {}))
    assert root.name == f"BUILD {RID}"
    assert root.start_time_unix_nano == root.end_time_unix_nano == 50_000_000_000
    assert _attrs(root)["cicd.pipeline.result"] == "cancellation"


def test_results_and_ids() -> None:
    assert [
        pipeline_result(s)
        for s in (
            "SUCCESS",
            "FAILURE",
            "ABORTED",
            "TIMEOUT",
            "timeout",
            "SCHEDULE_FAILURE",
            "UNKNOWN",
        )
    ] == ["success", "failure", "cancellation", "timeout", "timeout", "error", "error"]
    assert trace_id("not-a-uuid-but-36-characters-long-xx") != bytes(16)
    assert len({span_id(RID, r) for r in ("build", "stage\x00a", "wait\x00a")}) == 3
    assert all(any(span_id(RID, str(n))) for n in range(2000))


def test_endpoint_rules_follow_the_otel_spec() -> None:
    assert traces_url("http://tempo:4318/", None, None) == "http://tempo:4318/v1/traces"
    assert traces_url(None, "http://c:4318/custom", "http://x") == "http://c:4318/custom"
    assert traces_url(None, None, "http://c:4318") == "http://c:4318/v1/traces"
    assert traces_url("http://a:4318", "http://b/v1/traces", None) == "http://a:4318/v1/traces"
    assert traces_url(None, None, None) is None
    assert parse_headers("a=1, b = x%20y ,") == {"a": "1", "b": "x y"}
    assert (
        shown_url("https://u:pw-123456@tempo:4318/v1/traces") == "https://***@tempo:4318/v1/traces"
    )
    assert shown_url("http://tempo:4318/v1/traces") == "http://tempo:4318/v1/traces"


def test_header_values_are_secret_in_errors_and_check_config(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MONITOR_AUTH_TOKEN", "a-token-for-tests-0001")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"broken{SECRET}")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "OTEL_EXPORTER_OTLP_HEADERS" in str(err.value) and SECRET not in str(err.value)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer {SECRET}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "builds")
    s = load_settings()
    assert SECRET in s.secret_values()
    assert main(["check-config"]) == 0
    out = capsys.readouterr()
    shown = json.loads(out.out)
    assert shown["otel_exporter_otlp_headers"] == "********"
    assert shown["otel_service_name"] == "builds"
    assert SECRET not in out.out + out.err


async def _round_trip(outbox: TraceOutbox) -> None:
    await outbox.add("b", 2.0)
    await outbox.add("a", 1.0)
    await outbox.add("a", 5.0)  # the first completion time stays
    assert [(p.record_id, p.completed_at) for p in await outbox.pending()] == [
        ("a", 1.0),
        ("b", 2.0),
    ]
    await outbox.remove(["a", "unknown"])
    assert [p.record_id for p in await outbox.pending()] == ["b"]


async def test_memory_outbox() -> None:
    await _round_trip(MemoryOutbox())


async def test_sqlite_outbox_survives_reopening_beside_the_records(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    await _round_trip(SqliteOutbox(store))
    await store.close()
    again = SqliteStore(path)
    assert await again.load() == []  # the record table is untouched
    assert [p.record_id for p in await SqliteOutbox(again).pending()] == ["b"]
    await again.close()


def test_retry_after_as_seconds_or_an_http_date() -> None:
    from monitor.traces.exporter import _retry_after

    assert _retry_after("2", 0.0) == 2.0
    assert _retry_after("0.5", 0.0) == 0.5
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    assert _retry_after("nan", 0.0) is None
    assert _retry_after("soon", 0.0) is None
    assert _retry_after(None, 0.0) is None
