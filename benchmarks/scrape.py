"""Case 3, scrape: /metrics for N watched records of 8 stages, ours against the obvious way.

Ours is the daemon's own `render_metrics` over a watchlist holding N records.
The baseline is what a straightforward exporter does: labelled `Gauge`s in a
`CollectorRegistry`, set at poll time, rendered by `prometheus_client.generate_latest`.
Both bodies carry the same per-record samples and the same process metrics
(the daemon's aggregate registry is rendered in both); `equivalent` says
whether their parsed samples are identical.

Two timings for ours, because its cost depends on what changed since the last scrape:
- `changed`: every record was polled again and its running stage's durations moved,
  which is the steady state of a busy watchlist scraped every 15-30 s (the worst case);
- `unchanged`: nothing moved (every record finished, or scraped twice in a row).
The baseline costs the same either way.

Usage (prints one JSON line):
    python -m benchmarks.scrape --records 100,1000,5000 --repeat 7
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import emit, median
from monitor.domain import RecordSnapshot, RecordState, StageSnapshot, ms_to_seconds
from monitor.metrics.aggregates import MonitorMetrics
from monitor.metrics.renderer import STAGE_FAMILIES, RecordCollector, render_metrics
from monitor.settings import DEFAULT_TERMINAL_STATUSES
from monitor.store.memory import MemoryStore
from monitor.tracking.watchlist import WatchedRecord, Watchlist

STAGES = 8
NAMES = ("initial", "Code CheckOut", "Maven", "npm build", "Unit Tests", "Docker Build", "Upload")
T0 = 1_790_000_000.0


def make_snapshot(i: int) -> RecordSnapshot:
    """Record i: its first (i % 9) stages succeeded, the next one runs, the rest wait."""
    rid = f"{i:08x}-0000-4000-8000-{i:012x}"
    done = i % (STAGES + 1)
    stages = []
    for seq in range(STAGES):
        key = "initial" if seq == 0 else "final" if seq == STAGES - 1 else f"stage{seq}"
        name = "final" if seq == STAGES - 1 else NAMES[seq % len(NAMES)]
        start = T0 + seq * 60.0
        if seq < done:
            s = StageSnapshot(
                key, name, "SUCCESS", 5, 61_000, 60_000, 1_000, start, start + 61, seq
            )
        elif seq == done:
            s = StageSnapshot(key, name, "RUNNING", 2, 31_000, 30_000, 1_000, start, None, seq)
        else:
            s = StageSnapshot(key, name, "INIT", 0, None, None, None, None, None, seq)
        stages.append(s)
    return RecordSnapshot(rid, tuple(stages), T0)


def advance(snapshot: RecordSnapshot) -> RecordSnapshot:
    """The same record one poll later: the running stage's durations moved by a second."""
    stages = tuple(
        replace(
            s,
            duration_ms=(s.duration_ms or 0) + 1000,
            build_duration_ms=(s.build_duration_ms or 0) + 1000,
        )
        if s.status == "RUNNING"
        else s
        for s in snapshot.stages
    )
    return replace(snapshot, stages=stages)


class Ours:
    def __init__(self, n: int) -> None:
        self.metrics = MonitorMetrics()
        self.watchlist = Watchlist(
            MemoryStore(),
            terminal_statuses=frozenset(DEFAULT_TERMINAL_STATUSES),
            retention=900.0,
            clock=lambda: T0,
        )
        self.collector = RecordCollector(self.watchlist)
        for i in range(n):
            snap = make_snapshot(i)
            rec = WatchedRecord(record_id=snap.record_id, added_at=T0)
            rec.snapshot = snap
            rec.version = 1
            self.watchlist.records[rec.record_id] = rec
            for s in snap.stages:
                if s.status == "SUCCESS":
                    self.metrics.count_finished(s)

    def poll_all(self) -> None:
        """What the watchlist does to each record on a poll whose answer moved."""
        for rec in self.watchlist.records.values():
            assert rec.snapshot is not None
            rec.snapshot = advance(rec.snapshot)
            rec.version += 1

    def render(self) -> bytes:
        return render_metrics(self.collector, self.metrics.registry, False)[0]


class Baseline:
    """Labelled gauges, set at poll time; the scrape is `generate_latest`."""

    def __init__(self, ours: Ours) -> None:
        self.registry = CollectorRegistry()
        self.aggregates = ours.metrics.registry
        names = [name for name, _ in STAGE_FAMILIES]
        helps = dict(STAGE_FAMILIES)
        base = ["record_id", "build_stage", "display_name"]
        self.status = Gauge(names[0], helps[names[0]], [*base, "status"], registry=self.registry)
        g = {n: Gauge(n, helps[n], base, registry=self.registry) for n in names[1:7]}
        self.complete = Gauge(names[7], helps[names[7]], ["record_id"], registry=self.registry)
        for rec in ours.watchlist.records.values():
            assert rec.snapshot is not None
            for s in rec.snapshot.stages:
                labels = (rec.record_id, s.key, s.display_name)
                self.status.labels(*labels, s.status).set(1)
                values = (
                    s.status_code,
                    ms_to_seconds(s.duration_ms),
                    ms_to_seconds(s.build_duration_ms),
                    ms_to_seconds(s.pending_duration_ms),
                    s.start_time,
                    s.finish_time,
                )
                for name, v in zip(names[1:7], values, strict=True):
                    if v is not None:
                        g[name].labels(*labels).set(v)
            self.complete.labels(rec.record_id).set(1 if rec.state is RecordState.COMPLETE else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry) + generate_latest(self.aggregates)


def timed(fn: Callable[[], Any], before: Callable[[], None] | None, repeat: int) -> float:
    """Median seconds of `fn()` over `repeat` calls, `before()` run untimed ahead of each."""
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return median(times)


def samples(body: bytes) -> set[tuple[str, frozenset[tuple[str, str]], float]]:
    out = set()
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out.add((s.name, frozenset(s.labels.items()), s.value))
    return out


def measure(n: int, repeat: int, check: bool) -> dict[str, Any]:
    ours = Ours(n)
    base = Baseline(ours)
    ours.render()  # fill the render cache, as the first scrape after start-up does
    changed = timed(ours.render, ours.poll_all, repeat)
    unchanged = timed(ours.render, None, repeat)
    baseline = timed(base.render, None, repeat)
    body, base_body = ours.render(), base.render()
    result: dict[str, Any] = {
        "records": n,
        "ours_changed_seconds": changed,
        "ours_unchanged_seconds": unchanged,
        "baseline_seconds": baseline,
        "ours_bytes": len(body),
        "baseline_bytes": len(base_body),
        "speedup_changed": baseline / changed,
        "speedup_unchanged": baseline / unchanged,
    }
    if check:
        # The baseline's gauges hold the values of the last poll_all(); bring ours level.
        result["equivalent"] = samples(body) == samples(Baseline(ours).render())
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--records", default="100,1000,5000")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--check", action="store_true", help="also compare the parsed bodies")
    args = p.parse_args()
    sizes = [int(x) for x in args.records.split(",")]
    emit({"sizes": [measure(n, args.repeat, args.check) for n in sizes]})


if __name__ == "__main__":
    main()
