"""The render cache re-renders exactly what changed: a moved stage, or the record's labels."""

from __future__ import annotations

from monitor.domain import RecordSnapshot, StageSnapshot
from monitor.metrics.aggregates import MonitorMetrics
from monitor.metrics.renderer import RecordCollector, render_metrics
from monitor.settings import DEFAULT_TERMINAL_STATUSES
from monitor.store.memory import MemoryStore
from monitor.tracking.watchlist import Watchlist
from tests.support.samples import parse_samples, value

RID = "94baa8ec-fd3f-4cae-81af-b24385a7220f"


def snapshot(running_ms: int) -> RecordSnapshot:
    done = StageSnapshot("initial", "initial", "SUCCESS", 5, 3000, 2000, 1000, 10.0, 13.0, 0)
    running = StageSnapshot(
        "stage1", "Maven", "RUNNING", 2, running_ms, running_ms, 0, 13.0, None, 1
    )
    return RecordSnapshot(RID, (done, running), 20.0)


async def test_a_moved_stage_and_changed_labels_show_at_the_next_scrape() -> None:
    metrics = MonitorMetrics()
    watchlist = Watchlist(MemoryStore(), terminal_statuses=frozenset(DEFAULT_TERMINAL_STATUSES))
    collector = RecordCollector(watchlist, retention=900.0)
    rec, _ = await watchlist.add(RID, labels={"team": "a"})

    def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return parse_samples(render_metrics(collector, metrics.registry, False)[0].decode())

    await watchlist.apply_snapshot(rec, snapshot(5000))
    first = scrape()
    assert value(first, "codearts_build_stage_duration_seconds", build_stage="stage1") == 5.0

    await watchlist.apply_snapshot(rec, snapshot(9000))
    second = scrape()
    assert value(second, "codearts_build_stage_duration_seconds", build_stage="stage1") == 9.0
    assert value(second, "codearts_build_stage_duration_seconds", build_stage="initial") == 3.0
    assert {k: v for k, v in first.items() if ("build_stage", "initial") in k[1]} == {
        k: v for k, v in second.items() if ("build_stage", "initial") in k[1]
    }

    await watchlist.add(RID, labels={"team": "b"})
    third = scrape()
    per_record = [k for k in third if ("record_id", RID) in k[1]]
    assert per_record
    assert all(("team", "b") in labels for _, labels in per_record)
    assert value(third, "codearts_build_stage_duration_seconds", build_stage="initial") == 3.0
