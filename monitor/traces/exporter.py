"""The trace exporter: a watchlist listener that sends each completed build once over OTLP.

Completion first writes the record to the trace outbox (before the watchlist stores
the completion), then the completion event queues the build's spans; a task of the
daemon's own sends them in batches and removes delivered builds from the outbox.
Nothing here ever waits inside a poll or a scrape: the listener only appends to an
in-memory queue bounded by MONITOR_OTLP_QUEUE_SIZE spans.

Delivery retries connection errors, timeouts, 429 and 5xx with exponential backoff,
honouring Retry-After; a build still undelivered MONITOR_OTLP_RETRY_FOR after it
completed is dropped and counted, as is one the collector refuses for good (4xx)
or one that does not fit the queue. Ids are deterministic, so a trace sent again
after a crash is the same trace, not a second one.

The request is built with `opentelemetry-proto` and posted with our aiohttp rather
than through the SDK's exporter: the SDK makes its own span and trace ids and times,
and the trace must carry the record's ids and the API's times.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

import aiohttp
import anyio
from anyio.abc import TaskStatus
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from monitor.domain import RecordState
from monitor.domain.backoff import exponential_backoff
from monitor.logging import get_logger
from monitor.store.base import StoreError
from monitor.store.outbox import TraceOutbox
from monitor.traces.spans import BuildTrace, build_spans
from monitor.tracking.tracker import RecordCompleted
from monitor.tracking.watchlist import Watchlist, WatchlistEvent

OUTCOMES = ("delivered", "retried", "dropped")
BATCH_SPANS = 512  # spans per request at most (a build is never split across requests)
BACKOFF_BASE = 0.5  # seconds before the first retry; doubles each time
PROTOBUF = "application/x-protobuf"


class TraceObserver(Protocol):
    """Where delivery is counted (the daemon passes its MonitorMetrics)."""

    def count_traces(self, outcome: str, builds: int) -> None: ...

    def set_trace_queue(self, spans: int) -> None: ...


@dataclass(slots=True)
class _Queued:
    record_id: str
    completed_at: float
    spans: list[Span]


class _Retry(Exception):
    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class _Refused(Exception):
    """The collector refused the batch for good (a 4xx other than 429)."""


class TraceExporter:
    """Queues every completed build's spans and delivers them; see the module docstring."""

    def __init__(
        self,
        watchlist: Watchlist,
        outbox: TraceOutbox,
        observer: TraceObserver,
        *,
        url: str,
        headers: Mapping[str, str],
        service_name: str,
        scope_version: str,
        queue_size: int,
        retry_for: float,
        backoff_max: float,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._watchlist = watchlist
        self._outbox = outbox
        self._observer = observer
        self.url = url
        self._headers = {**headers, "Content-Type": PROTOBUF}
        self._resource = Resource(
            attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service_name))]
        )
        self._scope = InstrumentationScope(name="codearts-stage-monitor", version=scope_version)
        self._queue_size = queue_size
        self._retry_for = retry_for
        self._backoff_max = backoff_max
        self._timeout = timeout
        self._clock = clock
        self._queue: deque[_Queued] = deque()
        self._queued_ids: set[str] = set()
        self._queued_spans = 0
        self._forget: list[str] = []  # dropped while queuing: out of the outbox next round
        self._wake = anyio.Event()
        self._emptied = anyio.Event()
        self._log = get_logger("monitor.traces")
        observer.set_trace_queue(0)

    @property
    def queued_spans(self) -> int:
        return self._queued_spans

    @property
    def outbox(self) -> TraceOutbox:
        return self._outbox

    # --- hooks the daemon wires to the watchlist --------------------------------------

    async def remember(self, record_id: str, completed_at: float) -> None:
        """Before a completion is stored: the trace is owed from now on, even after kill -9."""
        await self._outbox.add(record_id, completed_at)

    def on_event(self, event: WatchlistEvent) -> None:
        """The watchlist's listener: a completed record's spans join the queue."""
        if isinstance(event, RecordCompleted):
            rec = self._watchlist.records.get(event.record_id)
            completed_at = rec.finished_at if rec is not None else None
            self._enqueue(event.record_id, completed_at or self._clock())

    async def resume(self) -> None:
        """After the watchlist was restored: queue every trace the outbox still owes."""
        stale = []
        for item in await self._outbox.pending():
            rec = self._watchlist.records.get(item.record_id)
            if rec is not None and rec.state is RecordState.ACTIVE:
                continue  # its completion was never stored: it completes (and queues) again
            if rec is None or rec.state is not RecordState.COMPLETE or rec.snapshot is None:
                stale.append(item.record_id)
                self._dropped([item.record_id], "record_gone")
                continue
            self._enqueue(item.record_id, item.completed_at)
        if stale:
            await self._outbox.remove(stale)
        if self._queue:
            self._log.info("traces_resumed", builds=len(self._queue), spans=self._queued_spans)

    # --- the queue ----------------------------------------------------------------------

    def _enqueue(self, record_id: str, completed_at: float) -> None:
        if record_id in self._queued_ids:
            return
        rec = self._watchlist.records.get(record_id)
        if rec is None or rec.snapshot is None:
            self._forget.append(record_id)
            self._dropped([record_id], "record_gone")
            return
        spans = build_spans(
            BuildTrace(record_id, rec.snapshot, rec.result or "UNKNOWN", dict(rec.labels))
        )
        if self._queued_spans + len(spans) > self._queue_size:
            self._forget.append(record_id)
            self._dropped([record_id], "queue_full")
            self._wake.set()
            return
        self._queue.append(_Queued(record_id, completed_at, spans))
        self._queued_ids.add(record_id)
        self._queued_spans += len(spans)
        self._observer.set_trace_queue(self._queued_spans)
        self._wake.set()

    def _dropped(self, record_ids: list[str], reason: str) -> None:
        self._observer.count_traces("dropped", len(record_ids))
        for rid in record_ids:
            self._log.warning("trace_dropped", record_id=rid, reason=reason)

    def _take(self, items: Iterable[_Queued]) -> None:
        for item in items:
            self._queue.remove(item)
            self._queued_ids.discard(item.record_id)
            self._queued_spans -= len(item.spans)
        self._observer.set_trace_queue(self._queued_spans)
        if not self._queue:
            self._emptied.set()
            self._emptied = anyio.Event()

    async def flushed(self) -> None:
        """Return once nothing is queued (on shutdown: deliver what can be, within the grace)."""
        while self._queue:
            await self._emptied.wait()

    # --- delivery -----------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Deliver until cancelled; what is left stays in the outbox for the next start."""
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            task_status.started()
            attempt = 0
            while True:
                await self._forget_dropped()
                if not self._queue:
                    self._wake = anyio.Event()
                    await self._wake.wait()
                    continue
                batch = self._batch()
                if not batch:
                    continue
                try:
                    await self._post(session, batch)
                except _Retry as exc:
                    self._observer.count_traces("retried", len(batch))
                    delay = self._delay(attempt, exc.after)
                    attempt += 1
                    self._log.warning(
                        "trace_export_retry",
                        reason=str(exc),
                        builds=len(batch),
                        retry_in=round(delay, 3),
                    )
                    await anyio.sleep(delay)
                    continue
                except _Refused as exc:
                    await self._finish([b.record_id for b in batch])
                    self._take(batch)
                    self._dropped([b.record_id for b in batch], str(exc))
                    continue
                attempt = 0
                # Bookkeeping before the queue shrinks: `flushed()` then means "recorded".
                await self._finish([b.record_id for b in batch])
                self._take(batch)
                self._observer.count_traces("delivered", len(batch))

    def _batch(self) -> list[_Queued]:
        """Builds from the head of the queue, up to BATCH_SPANS spans; expired ones dropped."""
        deadline = self._clock() - self._retry_for
        expired = [b for b in self._queue if b.completed_at < deadline]
        if expired:
            self._take(expired)
            self._forget.extend(b.record_id for b in expired)
            self._dropped([b.record_id for b in expired], "retry_for_exceeded")
        batch: list[_Queued] = []
        spans = 0
        for item in self._queue:
            if batch and spans + len(item.spans) > BATCH_SPANS:
                break
            batch.append(item)
            spans += len(item.spans)
        return batch

    async def _post(self, session: aiohttp.ClientSession, batch: list[_Queued]) -> None:
        body = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=self._resource,
                    scope_spans=[
                        ScopeSpans(scope=self._scope, spans=[s for b in batch for s in b.spans])
                    ],
                )
            ]
        ).SerializeToString()
        try:
            async with session.post(self.url, data=body, headers=self._headers) as resp:
                answer = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _Retry(type(exc).__name__) from None
        if 200 <= status < 300:
            self._partial(answer)
            return
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}", _retry_after(retry_after, time.time()))
        raise _Refused(f"HTTP {status}")

    def _partial(self, answer: bytes) -> None:
        try:
            reply = ExportTraceServiceResponse.FromString(answer)
        except DecodeError:  # an unreadable 2xx body still means accepted
            return
        rejected = reply.partial_success.rejected_spans
        if rejected:
            self._log.warning(
                "trace_spans_rejected",
                spans=rejected,
                message=reply.partial_success.error_message[:200],
            )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self._retry_for)
        # Some jitter, so replicas that failed together do not come back together.
        base = exponential_backoff(attempt + 1, BACKOFF_BASE, self._backoff_max)
        return base * random.uniform(0.8, 1.0)

    async def _finish(self, record_ids: list[str]) -> None:
        try:
            await self._outbox.remove(record_ids)
        except StoreError as exc:
            # Still owed on the next start: sent again there, with the same ids.
            self._log.error("trace_outbox_write_failed", error=str(exc))

    async def _forget_dropped(self) -> None:
        if self._forget:
            ids, self._forget = self._forget, []
            await self._finish(ids)


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)  # delay-seconds (a fraction taken as given)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) else None
    try:
        return float(parsedate_to_datetime(value).timestamp()) - now
    except (TypeError, ValueError):
        return None
