"""The status page's pure parts: the bounded transition history and the timeline's geometry."""

from __future__ import annotations

from monitor.domain import StageSnapshot
from monitor.server.status.history import TransitionHistory
from monitor.server.status.page import Row, render_record
from monitor.server.status.timeline import render_timeline, segments
from monitor.tracking.tracker import PollDone, Transition
from monitor.tracking.watchlist import WatchedRecord
from tests.support.html import parse_html


def transition(record_id: str, n: int) -> Transition:
    return Transition(record_id, f"stage{n}", f"Stage {n}", None, "RUNNING", 2, None, None)


def stage(
    key: str, duration: int | None, pending: int | None, status: str = "SUCCESS"
) -> StageSnapshot:
    return StageSnapshot(key, key, status, 5, duration, None, pending, None, None, 0)


def test_history_keeps_the_newest_per_record_and_in_all() -> None:
    h = TransitionHistory(per_record=3, total=5, clock=lambda: 1.0)
    for n in range(4):
        h.on_event(transition("a", n))
    assert [t.transition.build_stage for t in h.transitions("a")] == ["stage3", "stage2", "stage1"]
    for n in range(3):
        h.on_event(transition("b", n))
    # 6 kept would be over 5: the record whose latest transition is oldest ("a") gives one up.
    assert len(h) == 5
    assert [t.transition.build_stage for t in h.transitions("a")] == ["stage3", "stage2"]
    assert len(h.transitions("b")) == 3
    for n in range(3, 8):
        h.on_event(transition("b", n))
    # b's own bound keeps it at its 3 newest, so a loses nothing more.
    assert [t.transition.build_stage for t in h.transitions("b")] == ["stage7", "stage6", "stage5"]
    assert len(h.transitions("a")) == 2 and len(h) == 5
    h.on_event(PollDone("b", "timeout"))
    poll = h.last_poll("b")
    assert poll is not None and poll.outcome == "timeout"
    h.forget("b")
    assert h.transitions("b") == [] and h.last_poll("b") is None and len(h) == 2


def test_history_stays_bounded_over_many_records() -> None:
    h = TransitionHistory(per_record=50, total=10_000)
    for i in range(30_000):
        h.on_event(transition(f"r{i}", i))
    assert len(h) == 10_000
    assert h.transitions("r0") == [] and len(h.transitions("r29999")) == 1


def test_stages_lie_end_to_end_as_long_as_their_duration() -> None:
    stages = [
        stage("initial", 10_000, 4_000),
        stage("stage1", 30_000, 0),
        stage("stage2", None, None, "INIT"),
        stage("final", 2_000, 5_000),  # a wait longer than the duration is clipped to it
    ]
    segs, total = segments(stages)
    assert total == 42.0
    assert [(s.offset, s.wait, s.run) for s in segs] == [
        (0.0, 4.0, 6.0),
        (10.0, 0.0, 30.0),
        (40.0, 0.0, 0.0),
        (40.0, 2.0, 0.0),
    ]
    svg = parse_html(render_timeline(stages, width=420)).find("svg")
    widths = {
        g.attrs["data-stage"]: sum(float(r.attrs["width"]) for r in g.find_all("rect"))
        for g in svg.find_all("g")
    }
    assert widths == {"initial": 100.0, "stage1": 300.0, "stage2": 0.0, "final": 20.0}
    axis = [t.text for t in svg.find_all("text")]
    assert axis[0] == "0s" and len(axis) <= 5


def test_a_build_without_stages_says_so() -> None:
    svg = parse_html(render_timeline([])).find("svg")
    assert svg.find_all("rect") == [] and "no stages yet" in svg.text


def test_error_messages_and_labels_on_the_record_page_are_text() -> None:
    rec = WatchedRecord(
        record_id="0" * 8 + "-0000-4000-8000-" + "0" * 12,
        labels={"team": '"><script>alert(3)</script>'},
        added_at=1.0,
    )
    rec.error = "HTTP 500: <script>alert(4)</script>"
    history = TransitionHistory(clock=lambda: 2.0)
    history.on_event(PollDone(rec.record_id, "server_error"))
    row = Row(rec, None, history.last_poll(rec.record_id), retired=False)
    body = render_record(row, [], now=3.0, refresh=5.0, confirmations=3)
    doc = parse_html(body)
    assert doc.find_all("script") == []
    assert "HTTP 500: <script>alert(4)</script>" in doc.text
    assert 'team="><script>alert(3)</script>' in doc.text
    assert "server_error" in doc.text
