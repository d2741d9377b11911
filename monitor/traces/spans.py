"""One completed build as OTLP spans: pure, so the same build always gives the same trace.

Layout (every span a child of the root):

    BUILD {job name}                     SERVER, earliest stage start .. latest finish
    |- wait {display name}               INTERNAL, start - pending .. start (pending > 0)
    |- {display name}                    INTERNAL, the API's start_time .. finish_time
    ...

The trace id is the record id's 128 bits (a record id is a UUID, so a user can
paste it without dashes into Tempo or Jaeger); each span id is the first 8
bytes of a SHA-256 over the record id and the span's role, so exporting a build
again never makes a second, different trace. Times are the API's, to the
millisecond, never the times the monitor happened to poll.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from monitor.domain import RecordSnapshot, StageSnapshot

SUCCESS = "SUCCESS"
# cicd.pipeline.result / cicd.pipeline.task.run.result, from the OTel CI/CD conventions.
_RESULTS = {"SUCCESS": "success", "FAILURE": "failure", "ABORTED": "cancellation"}
# Labels that carry what a trace names, where the record has them (discovery sets them).
JOB_NAME_LABEL = "job_name"
BUILD_NUMBER_LABEL = "build_number"
BRANCH_LABEL = "branch"


@dataclass(frozen=True, slots=True)
class BuildTrace:
    """Everything one build's trace needs, read from the record when it completed."""

    record_id: str
    snapshot: RecordSnapshot
    result: str  # the record's result: SUCCESS, or the first stage that did not succeed
    labels: Mapping[str, str]


def pipeline_result(status: str) -> str:
    """The CI/CD conventions' result for a CodeArts status."""
    upper = status.upper()
    if upper == "TIMEOUT":
        return "timeout"
    return _RESULTS.get(upper, "error")


def trace_id(record_id: str) -> bytes:
    """The record id's 128 bits; a record id that is no UUID is hashed instead."""
    try:
        return uuid.UUID(record_id).bytes
    except ValueError:
        return hashlib.sha256(record_id.encode()).digest()[:16]


def span_id(record_id: str, role: str) -> bytes:
    """8 bytes from the record id and the span's role; never all zero (that means "none")."""
    digest = hashlib.sha256(f"{record_id}\x00{role}".encode()).digest()
    first = digest[:8]
    return first if any(first) else digest[8:15] + b"\x01"


def ran(stage: StageSnapshot) -> bool:
    """A stage ran if it has both times, and it either succeeded or took any time at all.

    The service marks every stage after an abort ABORTED with zero durations at the
    moment of the abort: those never ran and are listed, not drawn.
    """
    if stage.start_time is None or stage.finish_time is None:
        return False
    return stage.status == SUCCESS or bool(stage.duration_ms)


def build_spans(build: BuildTrace) -> list[Span]:
    """The root span and, per stage that ran, its wait span (if it waited) and its span."""
    rid = build.record_id
    tid = trace_id(rid)
    root_id = span_id(rid, "build")
    stages = build.snapshot.stages
    drawn = [s for s in stages if ran(s)]
    children: list[Span] = []
    for st in drawn:
        start = _ns(st.start_time)
        pending_ms = st.pending_duration_ms or 0
        if pending_ms > 0:
            children.append(
                _span(
                    tid,
                    span_id(rid, f"wait\x00{st.key}"),
                    root_id,
                    f"wait {st.display_name}",
                    Span.SPAN_KIND_INTERNAL,
                    start - pending_ms * 1_000_000,
                    start,
                    {"codearts.stage.key": st.key},
                )
            )
        attrs: dict[str, object] = {
            "cicd.pipeline.task.name": st.display_name,
            "cicd.pipeline.task.run.result": pipeline_result(st.status),
            "codearts.stage.key": st.key,
        }
        if st.stage_id is not None:
            attrs["cicd.pipeline.task.run.id"] = st.stage_id
        if st.status_code is not None:
            attrs["codearts.stage.status_code"] = st.status_code
        if st.pending_duration_ms is not None:
            attrs["codearts.stage.pending_seconds"] = st.pending_duration_ms / 1000.0
        children.append(
            _span(
                tid,
                span_id(rid, f"stage\x00{st.key}"),
                root_id,
                st.display_name,
                Span.SPAN_KIND_INTERNAL,
                start,
                _ns(st.finish_time),
                attrs,
                error=None if st.status == SUCCESS else st.status,
            )
        )
    start_ns, end_ns = _root_times(stages)
    job_name = build.labels.get(JOB_NAME_LABEL) or None
    root_attrs: dict[str, object] = {
        "cicd.pipeline.run.id": rid,
        "cicd.pipeline.result": pipeline_result(build.result),
    }
    if job_name is not None:
        root_attrs["cicd.pipeline.name"] = job_name
    number = build.labels.get(BUILD_NUMBER_LABEL, "")
    if number.isdigit():
        root_attrs["codearts.build.number"] = int(number)
    if build.labels.get(BRANCH_LABEL):
        root_attrs["vcs.ref.head.name"] = build.labels[BRANCH_LABEL]
    not_run = [s.display_name for s in stages if not ran(s)]
    if not_run:
        root_attrs["codearts.stages.not_run"] = not_run
    root = _span(
        tid,
        root_id,
        b"",
        f"BUILD {job_name or rid}",
        Span.SPAN_KIND_SERVER,
        start_ns,
        end_ns,
        root_attrs,
        error=None if build.result == SUCCESS else build.result,
    )
    return [root, *children]


def _root_times(stages: Sequence[StageSnapshot]) -> tuple[int, int]:
    """Earliest stage start (or creation, when no stage started) to the latest finish."""
    starts = [s.start_time for s in stages if s.start_time is not None]
    if not starts:
        starts = [s.created_at for s in stages if s.created_at is not None]
    finishes = [s.finish_time for s in stages if s.finish_time is not None]
    start = min(starts) if starts else min(finishes, default=0.0)
    end = max(finishes, default=start)
    start_ns = _ns(start)
    return start_ns, max(start_ns, _ns(end))


def _ns(seconds: float | None) -> int:
    """Unix nanoseconds, rounded to the millisecond the API gives."""
    assert seconds is not None
    return round(seconds * 1000) * 1_000_000


def _span(
    tid: bytes,
    sid: bytes,
    parent: bytes,
    name: str,
    kind: Span.SpanKind.ValueType,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, object],
    *,
    error: str | None = None,
) -> Span:
    span = Span(
        trace_id=tid,
        span_id=sid,
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=end_ns,
        attributes=[KeyValue(key=k, value=_value(v)) for k, v in attributes.items()],
    )
    if error is not None:
        span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=error))
    return span


def _value(value: object) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[_value(v) for v in value]))
    return AnyValue(string_value=str(value))
