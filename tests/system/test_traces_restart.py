"""kill -9 in the middle of trace export, restart on the same state: every trace arrives.

Real processes (`stage-monitor simulate`, `stage-monitor run` twice) and a loopback
OTLP/HTTP receiver in this process that refuses some requests, so traces are owed
at the moment of the kill.
"""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

from tests.support.otlp import Answer, OtlpReceiver, expected_trace, receiver_thread, view
from tests.support.procs import events, get, monitor_env, process, simulator, wait

HEADER_SECRET = "tenant-Secret-Kq3Vn8Lp2Zx6"


def test_kill_9_during_export_then_restart_every_completed_record_has_its_trace(
    tmp_path: Path,
) -> None:
    state = tmp_path / "monitor.db"
    log1, log2 = tmp_path / "run1.log", tmp_path / "run2.log"
    # Every third request fails after the receiver has read it: retried, so re-sent.
    recv = OtlpReceiver(policy=lambda n: Answer(503) if n % 3 == 2 else Answer(200))
    with (
        receiver_thread(recv),
        simulator(tmp_path, "--records", "40", "--seed", "11", "--duration-scale", "0.01") as (
            url,
            records,
        ),
    ):
        n = len(records)
        env = monitor_env(
            url,
            records,
            state,
            MONITOR_OTLP_BACKOFF_MAX="0.3",
            OTEL_EXPORTER_OTLP_ENDPOINT=recv.url,
            OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{HEADER_SECRET}",
        )
        with process(["run"], log1, env) as first:
            wait(
                lambda: (
                    n // 3 <= len(events(log1, "record_complete")) < n - 5
                    and len(recv.traces()) >= 3
                ),
                60,
                "a third of the records to complete and some traces delivered",
            )
            # From here the receiver accepts nothing, so the builds that complete next are
            # owed at the kill whatever the timing: their traces must come from the restart.
            policy = recv.policy
            recv.policy = lambda n: Answer(503)
            owed_from = len(events(log1, "record_complete"))
            wait(
                lambda: len(events(log1, "record_complete")) >= owed_from + 2,
                60,
                "two more records to complete while the receiver refuses",
            )
            first.send_signal(signal.SIGKILL)
            assert first.wait(timeout=10) == -signal.SIGKILL
        before_kill = len(recv.received)
        completed_1 = {e["record_id"] for e in events(log1, "record_complete")}

        recv.policy = policy
        with process(["run"], log2, env) as second:
            wait(
                lambda: {uuid.UUID(r).bytes for r in records} <= set(recv.traces()),
                90,
                "a trace of every record",
            )
            port = events(log2, "daemon_started")[0]["port"]
            metrics = str(get(f"http://127.0.0.1:{port}/metrics"))
            truth = get(f"{url}/_sim/records")
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=20) == 0

    completed_2 = {e["record_id"] for e in events(log2, "record_complete")}
    # Completed once (a kill between storing a completion and logging it loses the line,
    # never the trace: the outbox entry was written first).
    assert not completed_1 & completed_2
    # Traces were owed at the kill (the 503s saw to it), and the second process sent them.
    assert events(log2, "traces_resumed")[0]["builds"] > 0
    traces = recv.traces()
    for rid in records:
        want = expected_trace(rid, {"result": {"build_stages": truth[rid]}})
        copies = recv.traces(accepted_only=False)[uuid.UUID(rid).bytes]
        assert all(view(spans) == want for spans in copies), rid
        assert len({tuple(sorted(s.span_id for s in c)) for c in copies}) == 1
        assert traces[uuid.UUID(rid).bytes]
    # A trace delivered before the kill is sent again only if the kill came between the
    # collector's 200 and the outbox write: at most the builds of the last request.
    accepted_1 = [r for r in recv.received[:before_kill] if r.answer.status == 200]
    last = {s.trace_id for s in accepted_1[-1].spans} if accepted_1 else set()
    delivered_1 = {s.trace_id for r in accepted_1 for s in r.spans}
    resent = {s.trace_id for r in recv.received[before_kill:] for s in r.spans} & delivered_1
    assert resent <= last
    for text in (log1.read_text(), log2.read_text(), metrics):
        assert HEADER_SECRET not in text
