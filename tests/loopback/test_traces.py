"""Completed builds as OTLP traces, through the daemon, to a loopback OTLP/HTTP receiver."""

from __future__ import annotations

import io
import uuid
from collections import Counter
from pathlib import Path

import anyio
import pytest

from monitor.app import Daemon
from monitor.domain import RecordState
from monitor.simulator.scenario import RecordPlan
from monitor.store import MemoryStore, SqliteStore, StoredRecord, StoreError
from monitor.store.outbox import SqliteOutbox, TraceOutbox
from tests.support.loopback import (
    SimServer,
    fetch,
    log_events,
    log_stream,
    make_settings,
    running,
    scrape,
    wait_until,
)
from tests.support.otlp import Answer, OtlpReceiver, expected_trace, receiving, view
from tests.support.samples import value

_ = log_stream  # the fixture
HEADER_SECRET = "otlp-tenant-key-Hq7Zr2Wm9Xc4"
FATES = ["SUCCESS", "FAILURE", "ABORTED", "SCHEDULE_FAILURE", "TIMEOUT"]


def _builds(sim: SimServer, n: int) -> list[RecordPlan]:
    s = sim.sim
    return [s.new_build(started_ago=i * 37.0, fate=FATES[i % len(FATES)]) for i in range(n)]


def _labels(i: int) -> dict[str, str]:
    if i % 2:
        return {}
    return {"job_name": f"job-{i % 3}", "build_number": str(100 + i), "branch": "main"}


async def _poll_round(daemon: Daemon) -> None:
    """Return once every active record was polled again."""
    before = {rid: r.polls for rid, r in daemon.watchlist.records.items()}
    await wait_until(
        daemon,
        lambda: all(
            r.polls > before.get(rid, 0) or r.state is not RecordState.ACTIVE
            for rid, r in daemon.watchlist.records.items()
        ),
    )


async def _until_metric(daemon: Daemon, outcome: str, at_least: float) -> None:
    """Scrape until stage_monitor_traces_exported_total{outcome} reaches `at_least`."""
    with anyio.fail_after(20):
        while True:
            got = value(
                await scrape(daemon), "stage_monitor_traces_exported_total", outcome=outcome
            )
            if (got or 0) >= at_least:
                return
            await anyio.sleep(0.02)  # a counter has nothing to await; /metrics is what users see


async def _all_complete(daemon: Daemon, ids: list[str]) -> None:
    await wait_until(
        daemon,
        lambda: all(daemon.watchlist.records[i].state is RecordState.COMPLETE for i in ids),
        timeout=30,
    )


async def test_thirty_builds_give_one_trace_each_equal_to_the_simulators_truth(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    plans = _builds(sim, 30)
    ids = [p.record_id for p in plans]
    async with receiving() as recv:
        settings = make_settings(
            sim.url,
            otlp_endpoint=recv.url,
            otel_exporter_otlp_headers=f"x-scope-orgid=tenant-1,authorization=Bearer%20{HEADER_SECRET}",
        )
        daemon = Daemon(settings)
        async with running(daemon):
            for i, rid in enumerate(ids):
                await daemon.watchlist.add(rid, _labels(i), source="admin")
            # Builds end one after another in the simulated world.
            for _ in range(10):
                sim.sim.clock.advance(60)
                await _poll_round(daemon)
            sim.sim.clock.advance(100_000)
            await _all_complete(daemon, ids)
            await recv.wait_for(lambda: len(recv.traces()) == 30)
            samples = await scrape(daemon)
            _, _, metrics_text = await fetch(daemon, "/metrics")
        assert value(samples, "stage_monitor_traces_exported_total", outcome="delivered") == 30
        assert value(samples, "stage_monitor_traces_exported_total", outcome="dropped") == 0
        assert value(samples, "stage_monitor_trace_queue_spans") == 0

    traces = recv.traces()
    for i, p in enumerate(plans):
        tid = uuid.UUID(p.record_id).bytes  # pasteable into Tempo or Jaeger without dashes
        assert len(traces[tid]) == 1, p.record_id  # exactly once
        spans = traces[tid][0]
        assert view(spans) == expected_trace(p.record_id, sim.sim.truth(p.record_id), _labels(i))
        root = [s for s in spans if not s.parent_span_id]
        assert len(root) == 1
        assert all(s.parent_span_id == root[0].span_id for s in spans if s is not root[0])
        ids_seen = [s.span_id for s in spans]
        assert len(set(ids_seen)) == len(ids_seen) and all(any(b) for b in ids_seen)
    for r in recv.received:
        assert r.headers["Content-Type"] == "application/x-protobuf"
        assert r.headers["authorization"] == f"Bearer {HEADER_SECRET}"
        (resource,) = r.request.resource_spans
        attrs = {a.key: a.value.string_value for a in resource.resource.attributes}
        assert attrs == {"service.name": "codearts-build"}
    assert HEADER_SECRET not in log_stream.getvalue()
    assert HEADER_SECRET not in metrics_text


async def test_failing_receiver_every_trace_arrives_and_duplicates_are_identical(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    plans = _builds(sim, 12)
    ids = [p.record_id for p in plans]
    # Half the requests fail (503, or 429 with Retry-After) after the receiver has read
    # them: each retry then sends a trace the receiver already holds once.
    recv = OtlpReceiver(
        script=[Answer(429, retry_after="1")],
        policy=lambda n: Answer(503) if n % 2 else Answer(200),
    )
    async with receiving(recv):
        settings = make_settings(
            sim.url,
            ids,
            otlp_endpoint=recv.url,
            otlp_backoff_max=0.2,
            otel_exporter_otlp_headers=f"authorization=Bearer%20{HEADER_SECRET}",
        )
        daemon = Daemon(settings)
        async with running(daemon):
            await _poll_round(daemon)
            sim.sim.clock.advance(200)  # some builds end while the receiver is up
            await _poll_round(daemon)
            await recv.stop()  # gone: connections refused
            sim.sim.clock.advance(100_000)  # the rest end while it is gone
            await _all_complete(daemon, ids)
            samples = await scrape(daemon)
            retried = value(samples, "stage_monitor_traces_exported_total", outcome="retried")
            await _until_metric(daemon, "retried", (retried or 0) + 2)
            await recv.start()  # back, on the same port
            await recv.wait_for(lambda: len(recv.traces()) == len(ids))
            samples = await scrape(daemon)
    assert value(samples, "stage_monitor_traces_exported_total", outcome="delivered") == len(ids)
    assert (value(samples, "stage_monitor_traces_exported_total", outcome="retried") or 0) >= 3
    assert value(samples, "stage_monitor_traces_exported_total", outcome="dropped") == 0
    assert set(recv.traces()) == {uuid.UUID(i).bytes for i in ids}
    for p in plans:
        copies = recv.traces(accepted_only=False)[uuid.UUID(p.record_id).bytes]
        want = expected_trace(p.record_id, sim.sim.truth(p.record_id))
        for spans in copies:  # a trace sent twice is the same trace: same ids, same spans
            assert view(spans) == want
            assert sorted(s.span_id for s in spans) == sorted(s.span_id for s in copies[0])
    statuses = Counter(r.answer.status for r in recv.received)
    assert statuses[503] and statuses[429] == 1
    # Failures are logged, but never with a header value.
    assert log_events(log_stream, "trace_export_retry")
    assert HEADER_SECRET not in log_stream.getvalue()
    # Retry-After was honoured: the next attempt came no sooner than it said.
    assert recv.received[1].at - recv.received[0].at >= 0.95


@pytest.mark.parametrize(
    ("answer", "overrides", "reason"),
    [
        (Answer(400), {}, "HTTP 400"),  # refused for good: not retried
        (Answer(503), {"otlp_retry_for": 0.3, "otlp_backoff_max": 0.05}, "retry_for_exceeded"),
        (Answer(200), {"otlp_queue_size": 2}, "queue_full"),  # no build fits in 2 spans
    ],
)
async def test_undeliverable_traces_are_dropped_counted_and_forgotten(
    sim: SimServer,
    log_stream: io.StringIO,
    answer: Answer,
    overrides: dict[str, float],
    reason: str,
) -> None:
    plans = [sim.sim.new_build(started_ago=100_000, fate="SUCCESS") for _ in range(3)]
    ids = [p.record_id for p in plans]
    async with receiving(OtlpReceiver(policy=lambda n: answer)) as recv:
        daemon = Daemon(make_settings(sim.url, ids, otlp_endpoint=recv.url, **overrides))
        async with running(daemon):
            await _all_complete(daemon, ids)
            await _until_metric(daemon, "dropped", 3)
            samples = await scrape(daemon)
            outbox = daemon.traces.outbox if daemon.traces is not None else None
            assert outbox is not None and await outbox.pending() == []
    assert value(samples, "stage_monitor_traces_exported_total", outcome="delivered") == 0
    assert value(samples, "stage_monitor_trace_queue_spans") == 0
    dropped = log_events(log_stream, "trace_dropped")
    assert sorted(e["record_id"] for e in dropped) == sorted(ids)
    assert {e["reason"] for e in dropped} == {reason}


class _CompletionWatchingStore(MemoryStore):
    """Checks the outbox at each stored completion; refuses the first one, as a full disk."""

    def __init__(self) -> None:
        super().__init__()
        self.outbox: TraceOutbox | None = None
        self.owed_at_completion: list[bool] = []

    async def save(self, record: StoredRecord) -> None:
        if record.state is RecordState.COMPLETE and self.outbox is not None:
            owed = {p.record_id for p in await self.outbox.pending()}
            self.owed_at_completion.append(record.record_id in owed)
            if len(self.owed_at_completion) == 1:
                raise StoreError("state file /x/monitor.db: disk I/O error")
        await super().save(record)


async def test_the_outbox_entry_is_written_before_the_completion_and_a_failed_write_repeats_nothing(
    sim: SimServer, log_stream: io.StringIO
) -> None:
    plan = sim.sim.new_build(started_ago=100_000, fate="FAILURE")
    store = _CompletionWatchingStore()
    async with receiving() as recv:
        daemon = Daemon(
            make_settings(sim.url, [plan.record_id], otlp_endpoint=recv.url), store=store
        )
        assert daemon.traces is not None
        store.outbox = daemon.traces.outbox
        async with running(daemon):
            await _all_complete(daemon, [plan.record_id])
            await _until_metric(daemon, "delivered", 1)
            samples = await scrape(daemon)
            assert await daemon.traces.outbox.pending() == []
    # Both attempts to store the completion found the trace already owed; the refused one
    # neither emitted the completion nor queued a trace: one trace, sent once.
    assert store.owed_at_completion == [True, True]
    assert len(log_events(log_stream, "state_write_failed")) == 1
    assert len(recv.received) == 1
    assert value(samples, "stage_monitor_traces_exported_total", outcome="delivered") == 1


async def _run_until_stopped(daemon: Daemon, ids: list[str], recv: OtlpReceiver) -> float:
    """Run the daemon until every record completed and one export failed, then stop it;
    returns how long `run()` took to return after `stop()`."""
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        await _all_complete(daemon, ids)
        await recv.wait_for(lambda: len(recv.received) >= 1)
        daemon.stop()
        started = anyio.current_time()
    return anyio.current_time() - started


async def test_stop_delivers_what_it_can_within_the_grace_and_keeps_the_rest_owed(
    sim: SimServer, tmp_path: Path
) -> None:
    ids = [sim.sim.new_build(started_ago=100_000, fate="SUCCESS").record_id for _ in range(2)]
    # The collector answers the first request 503 (retry in 0.3 s), then accepts: stopping
    # waits for that retry, within the grace.
    recv = OtlpReceiver(script=[Answer(503, retry_after="0.3")])
    async with receiving(recv):
        state = tmp_path / "first.db"
        daemon = Daemon(make_settings(sim.url, ids, otlp_endpoint=recv.url, state_path=str(state)))
        took = await _run_until_stopped(daemon, ids, recv)
    assert took < 5
    assert set(recv.traces()) == {uuid.UUID(i).bytes for i in ids}
    assert await _owed(state) == []

    # A collector that never accepts: the grace ends, the traces stay owed in the state file.
    recv = OtlpReceiver(policy=lambda n: Answer(503))
    async with receiving(recv):
        state = tmp_path / "second.db"
        settings = make_settings(
            sim.url, ids, otlp_endpoint=recv.url, state_path=str(state), shutdown_grace=0.3
        )
        took = await _run_until_stopped(Daemon(settings), ids, recv)
    assert took < 3
    assert recv.traces() == {}
    assert sorted(await _owed(state)) == sorted(ids)


async def _owed(state: Path) -> list[str]:
    store = SqliteStore(state)
    try:
        return [p.record_id for p in await SqliteOutbox(store).pending()]
    finally:
        await store.close()
