"""The render cache re-renders exactly what changed: a moved stage, or the record's labels.

Values alone would not show it (a cache that re-rendered everything, or nothing,
could print the same numbers), so these tests count which stages were rendered
and check which cached lines are the very same objects as before.
"""

from __future__ import annotations

from collections import Counter

import pytest

from monitor.domain import RecordSnapshot, StageSnapshot
from monitor.metrics import renderer
from monitor.metrics.aggregates import MonitorMetrics
from monitor.metrics.renderer import RecordCollector, render_metrics
from monitor.settings import DEFAULT_TERMINAL_STATUSES
from monitor.store.memory import MemoryStore
from monitor.tracking.watchlist import WatchedRecord, Watchlist
from tests.support.loopback import FakeClock
from tests.support.samples import parse_samples, value

RID = "94baa8ec-fd3f-4cae-81af-b24385a7220f"
OTHER = "0c6a7c3e-1f7e-4b0e-9a53-3f4f1d2a9b10"
TERMINAL = frozenset(DEFAULT_TERMINAL_STATUSES)


def snapshot(record_id: str, running_ms: int, status: str = "RUNNING") -> RecordSnapshot:
    done = StageSnapshot("initial", "initial", "SUCCESS", 5, 3000, 2000, 1000, 10.0, 13.0, 0)
    finish = 20.0 if status != "RUNNING" else None
    running = StageSnapshot(
        "stage1", "Maven", status, 2, running_ms, running_ms, 0, 13.0, finish, 1
    )
    return RecordSnapshot(record_id, (done, running), 20.0)


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, str]]:
    """Counts every stage the renderer renders, by (record id, stage key)."""
    calls: Counter[tuple[str, str]] = Counter()
    real = renderer._stage_lines

    def spy(rid: str, s: StageSnapshot) -> renderer.StageLines:
        record_id = rid.split('"')[1]
        calls[(record_id, s.key)] += 1
        return real(rid, s)

    monkeypatch.setattr(renderer, "_stage_lines", spy)
    return calls


def scrape(collector: RecordCollector) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse_samples(render_metrics(collector, MonitorMetrics().registry, False)[0].decode())


async def test_only_the_moved_stage_is_rendered_again(rendered: Counter[tuple[str, str]]) -> None:
    watchlist = Watchlist(MemoryStore(), terminal_statuses=TERMINAL)
    collector = RecordCollector(watchlist)
    rec, _ = await watchlist.add(RID, labels={"team": "a"})
    other, _ = await watchlist.add(OTHER)
    assert isinstance(rec, WatchedRecord) and isinstance(other, WatchedRecord)
    await watchlist.apply_snapshot(rec, snapshot(RID, 5000))
    await watchlist.apply_snapshot(other, snapshot(OTHER, 1000))

    first = scrape(collector)
    assert value(first, "codearts_build_stage_duration_seconds", record_id=RID,
                 build_stage="stage1") == 5.0  # fmt: skip
    assert rendered == {(RID, "initial"): 1, (RID, "stage1"): 1, (OTHER, "initial"): 1,
                        (OTHER, "stage1"): 1}  # fmt: skip
    entry = collector.cached(RID)
    other_entry = collector.cached(OTHER)
    assert entry is not None and other_entry is not None

    # Nothing changed: nothing is rendered, the cached lines are the same objects.
    rendered.clear()
    scrape(collector)
    assert rendered == {}
    assert collector.cached(RID) is entry

    # One stage of one record moved: that stage alone is rendered again.
    await watchlist.apply_snapshot(rec, snapshot(RID, 9000))
    second = scrape(collector)
    assert rendered == {(RID, "stage1"): 1}
    assert value(second, "codearts_build_stage_duration_seconds", record_id=RID,
                 build_stage="stage1") == 9.0  # fmt: skip
    new_entry = collector.cached(RID)
    assert new_entry is not None and new_entry is not entry
    assert new_entry[2][1]["initial"][1] is entry[2][1]["initial"][1]  # the stage's lines reused
    assert new_entry[2][1]["stage1"][1] is not entry[2][1]["stage1"][1]
    assert collector.cached(OTHER) is other_entry  # the other record untouched


async def test_changed_labels_render_every_stage_of_that_record_again(
    rendered: Counter[tuple[str, str]],
) -> None:
    watchlist = Watchlist(MemoryStore(), terminal_statuses=TERMINAL)
    collector = RecordCollector(watchlist)
    rec, _ = await watchlist.add(RID, labels={"team": "a"})
    assert isinstance(rec, WatchedRecord)
    await watchlist.apply_snapshot(rec, snapshot(RID, 5000))
    scrape(collector)
    rendered.clear()

    await watchlist.add(RID, labels={"team": "b"})
    third = scrape(collector)
    assert rendered == {(RID, "initial"): 1, (RID, "stage1"): 1}
    per_record = [k for k in third if ("record_id", RID) in k[1]]
    assert per_record
    assert all(("team", "b") in labels for _, labels in per_record)


async def test_a_scrape_changes_no_record_and_a_retired_records_entry_is_dropped(
    rendered: Counter[tuple[str, str]],
) -> None:
    clock = FakeClock()
    watchlist = Watchlist(MemoryStore(), terminal_statuses=TERMINAL, retention=60, clock=clock)
    collector = RecordCollector(watchlist)
    watchlist.on_removed(collector.forget)
    rec, _ = await watchlist.add(RID)
    assert isinstance(rec, WatchedRecord)
    await watchlist.apply_snapshot(rec, snapshot(RID, 5000, status="SUCCESS"))
    assert scrape(collector)
    assert collector.cached(RID) is not None

    clock.advance(61)  # retention over: the series go, but the scrape retires nothing
    samples = scrape(collector)
    assert not [k for k in samples if ("record_id", RID) in k[1]]
    assert watchlist.records[RID].snapshot is not None
    assert RID not in watchlist.tombstones

    assert await watchlist.retire_due() == 1
    assert collector.cached(RID) is None
    assert RID not in watchlist.records
    tombstone = await watchlist.tombstone(RID)
    assert tombstone is not None and tombstone.result == "SUCCESS"
