"""A loopback OTLP/HTTP trace receiver that decodes every request and answers as scripted."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
from aiohttp import web
from multidict import CIMultiDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


@dataclass(frozen=True)
class Answer:
    status: int = 200
    retry_after: str | None = None


@dataclass
class Received:
    """One request as the receiver saw it, and what it answered."""

    headers: CIMultiDict[str]
    request: ExportTraceServiceRequest
    answer: Answer
    at: float  # time.monotonic() when it arrived

    @property
    def spans(self) -> list[Span]:
        return [s for rs in self.request.resource_spans for ss in rs.scope_spans for s in ss.spans]


@dataclass
class OtlpReceiver:
    """Answers POST /v1/traces: the next scripted answer, else `policy(n)` (n counts from 0)."""

    script: list[Answer] = field(default_factory=list)
    policy: Callable[[int], Answer] = lambda n: Answer()
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _changed: anyio.Event = field(default_factory=anyio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        if self.port == 0:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Gone: every connection attempt is refused until `start()` again (same port)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def accepted(self) -> list[Received]:
        return [r for r in self.received if 200 <= r.answer.status < 300]

    def traces(self, *, accepted_only: bool = True) -> dict[bytes, list[list[Span]]]:
        """Trace id -> the spans of that trace in each (accepted) request that carried it."""
        out: dict[bytes, list[list[Span]]] = {}
        for r in self.accepted() if accepted_only else self.received:
            per: dict[bytes, list[Span]] = {}
            for s in r.spans:
                per.setdefault(s.trace_id, []).append(s)
            for tid, spans in per.items():
                out.setdefault(tid, []).append(spans)
        return out

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        with anyio.fail_after(timeout):
            while not predicate():
                await self._changed.wait()

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        decoded = ExportTraceServiceRequest.FromString(body)
        answer = self.script.pop(0) if self.script else self.policy(len(self.received))
        self.received.append(Received(request.headers.copy(), decoded, answer, time.monotonic()))
        self._changed.set()
        self._changed = anyio.Event()
        headers = {"Retry-After": answer.retry_after} if answer.retry_after else {}
        reply = ExportTraceServiceResponse().SerializeToString() if answer.status == 200 else b""
        return web.Response(
            status=answer.status,
            body=reply,
            headers=headers,
            content_type="application/x-protobuf",
        )


@asynccontextmanager
async def receiving(receiver: OtlpReceiver | None = None) -> AsyncIterator[OtlpReceiver]:
    recv = receiver or OtlpReceiver()
    await recv.start()
    try:
        yield recv
    finally:
        await recv.stop()


# --- what a build's trace must be, worked out from the simulator's answer alone -----------

SpanView = tuple[str, int, str | None, int, int, tuple[tuple[str, object], ...], int]
_RESULTS = {"SUCCESS": "success", "FAILURE": "failure", "ABORTED": "cancellation"}
SERVER, INTERNAL, ERROR = 2, 1, 2  # Span.SPAN_KIND_SERVER/INTERNAL, Status.STATUS_CODE_ERROR


def _ms_ns(text: str | None) -> int:
    assert text is not None
    return round(datetime.fromisoformat(text).timestamp() * 1000) * 1_000_000


def _result(status: str) -> str:
    return "timeout" if status.upper() == "TIMEOUT" else _RESULTS.get(status, "error")


def expected_trace(
    record_id: str, truth: dict[str, Any], labels: dict[str, str] | None = None
) -> list[SpanView]:
    """The spans (as `view` shows them) a completed build's trace must hold, sorted."""
    labels = labels or {}
    stages = sorted(truth["result"]["build_stages"].items(), key=lambda kv: kv[1]["sequence"])
    result = next((st["status"] for _, st in stages if st["status"] != "SUCCESS"), "SUCCESS")
    root = f"BUILD {labels.get('job_name') or record_id}"
    out: list[SpanView] = []
    not_run = []
    for key, st in stages:
        if not (
            st["start_time"] and st["finish_time"] and (st["status"] == "SUCCESS" or st["duration"])
        ):
            not_run.append(st["display_name"])
            continue
        start = _ms_ns(st["start_time"])
        if st["pending_duration"]:
            wait = start - st["pending_duration"] * 1_000_000
            attrs_w = (("codearts.stage.key", key),)
            out.append((f"wait {st['display_name']}", INTERNAL, root, wait, start, attrs_w, 0))
        attrs: dict[str, object] = {
            "cicd.pipeline.task.name": st["display_name"],
            "cicd.pipeline.task.run.id": st["id"],
            "cicd.pipeline.task.run.result": _result(st["status"]),
            "codearts.stage.key": key,
            "codearts.stage.status_code": st["status_code"],
            "codearts.stage.pending_seconds": st["pending_duration"] / 1000,
        }
        code = 0 if st["status"] == "SUCCESS" else ERROR
        out.append(
            (
                st["display_name"],
                INTERNAL,
                root,
                start,
                _ms_ns(st["finish_time"]),
                tuple(sorted(attrs.items())),
                code,
            )
        )
    root_attrs: dict[str, object] = {
        "cicd.pipeline.run.id": record_id,
        "cicd.pipeline.result": _result(result),
    }
    if labels.get("job_name"):
        root_attrs["cicd.pipeline.name"] = labels["job_name"]
    if labels.get("build_number"):
        root_attrs["codearts.build.number"] = int(labels["build_number"])
    if labels.get("branch"):
        root_attrs["vcs.ref.head.name"] = labels["branch"]
    if not_run:
        root_attrs["codearts.stages.not_run"] = tuple(not_run)
    starts = [_ms_ns(st["start_time"]) for _, st in stages if st["start_time"]]
    finishes = [_ms_ns(st["finish_time"]) for _, st in stages if st["finish_time"]]
    code = 0 if result == "SUCCESS" else ERROR
    out.append(
        (root, SERVER, None, min(starts), max(finishes), tuple(sorted(root_attrs.items())), code)
    )
    return sorted(out, key=repr)


def _py(value: AnyValue) -> object:
    which = value.WhichOneof("value")
    if which == "array_value":
        return tuple(_py(v) for v in value.array_value.values)
    return getattr(value, which) if which else None


def view(spans: list[Span]) -> list[SpanView]:
    """Spans as comparable tuples: name, kind, parent's name, times, attributes, status."""
    names = {s.span_id: s.name for s in spans}
    return sorted(
        (
            (
                s.name,
                s.kind,
                names.get(s.parent_span_id) if s.parent_span_id else None,
                s.start_time_unix_nano,
                s.end_time_unix_nano,
                tuple(sorted((a.key, _py(a.value)) for a in s.attributes)),
                s.status.code,
            )
            for s in spans
        ),
        key=repr,
    )


@contextmanager
def receiver_thread(receiver: OtlpReceiver) -> Iterator[OtlpReceiver]:
    """The receiver on its own event loop in a thread, for tests that drive subprocesses."""
    started = threading.Event()
    stop: list[Callable[[], None]] = []

    async def serve() -> None:
        await receiver.start()
        done = anyio.Event()
        token = anyio.lowlevel.current_token()
        stop.append(lambda: anyio.from_thread.run_sync(done.set, token=token))
        started.set()
        try:
            await done.wait()
        finally:
            await receiver.stop()

    thread = threading.Thread(target=anyio.run, args=(serve,), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the OTLP receiver did not start")
    try:
        yield receiver
    finally:
        stop[0]()
        thread.join(10)
