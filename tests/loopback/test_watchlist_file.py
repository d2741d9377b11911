"""The watchlist file: read at start, re-read when it changes, bad lines skipped and reported."""

from __future__ import annotations

import io
import os
from pathlib import Path

from monitor.app import Daemon
from monitor.domain import RecordState
from monitor.tracking.sources import parse_watchlist
from tests.support.loopback import SimServer, log_events, make_settings, running, scrape, wait_until
from tests.support.samples import series

A = "94baa8ec-fd3f-4cae-81af-b24385a7220f"
B = "2cc26382-b2cb-4234-8eb0-b37d362f4d4c"


def test_parse_keeps_good_lines_and_reports_bad_ones() -> None:
    text = f"""
# builds of the release pipeline
{A} team=payments env=prod   # trailing comment
NOT-A-RECORD
{B} 1bad=label
{B}
"""
    entries, errors = parse_watchlist(text)
    assert [(e.record_id, e.labels) for e in entries] == [
        (A, {"team": "payments", "env": "prod"}),
        (B, {}),
    ]
    assert len(errors) == 2
    assert "line 4" in errors[0] and "not a record id" in errors[0]
    assert "line 5" in errors[1] and "'1bad'" in errors[1]


async def test_file_changes_add_and_remove_records(
    sim: SimServer, tmp_path: Path, log_stream: io.StringIO
) -> None:
    one = sim.sim.new_build(started_ago=-1_000_000)
    two = sim.sim.new_build(started_ago=-1_000_000)
    path = tmp_path / "watchlist.txt"
    path.write_text(f"{one.record_id} team=web\n")
    daemon = Daemon(make_settings(sim.url, watchlist_file=path, watchlist_reload_interval=0.05))
    async with running(daemon):
        records = daemon.watchlist.records
        await wait_until(daemon, lambda: one.record_id in records and records[one.record_id].polls)
        path.write_text(f"{two.record_id}\nbroken line\n")
        os.utime(path, ns=(1, 1))  # make sure the change is seen even within one mtime tick
        await wait_until(daemon, lambda: two.record_id in records and one.record_id not in records)
        await wait_until(daemon, lambda: records[two.record_id].polls > 0)
        samples = await scrape(daemon)
    assert series(samples, "codearts_build_stage_status", record_id=two.record_id)
    assert not series(samples, "codearts_build_stage_status", record_id=one.record_id)
    assert records[two.record_id].state is RecordState.ACTIVE
    assert [e["record_id"] for e in log_events(log_stream, "record_removed")] == [one.record_id]
    assert log_events(log_stream, "watchlist_line_invalid")


async def test_labels_from_the_file_reach_series_and_logs(
    sim: SimServer, tmp_path: Path, log_stream: io.StringIO
) -> None:
    plan = sim.sim.new_build(started_ago=10_000, fate="SUCCESS")
    path = tmp_path / "watchlist.txt"
    path.write_text(f"{plan.record_id} team=web\n")
    daemon = Daemon(make_settings(sim.url, watchlist_file=path))
    async with running(daemon):
        rec_ready = lambda: daemon.watchlist.records[plan.record_id].state is RecordState.COMPLETE  # noqa: E731
        await wait_until(daemon, rec_ready)
        samples = await scrape(daemon)
    assert series(samples, "codearts_build_stage_status", record_id=plan.record_id, team="web")
    assert series(samples, "codearts_build_record_complete", record_id=plan.record_id, team="web")
    complete = log_events(log_stream, "record_complete")
    assert complete[0]["labels"] == {"team": "web"}
