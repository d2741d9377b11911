"""Per-record labels from the watchlist file reach every per-record series and every log event."""

from __future__ import annotations

import io
from pathlib import Path

from monitor.app import Daemon
from tests.support.loopback import SimServer, log_events, make_settings, running, scrape, wait_until

UNKNOWN = "ffffffff-0000-4000-8000-000000000000"


async def test_file_labels_on_series_and_log_events(
    sim: SimServer, log_stream: io.StringIO, tmp_path: Path
) -> None:
    plan = sim.sim.new_build(started_ago=30)
    path = tmp_path / "watchlist"
    path.write_text(f"{plan.record_id} team=payments env=prod\n{UNKNOWN} team=ghost\n")
    d = Daemon(make_settings(sim.url, watchlist_file=path, not_found_confirmations=2))
    async with running(d):
        await wait_until(
            d,
            lambda: (
                d.watchlist.records[plan.record_id].snapshot is not None
                and d.watchlist.records[UNKNOWN].state.finished
            ),
        )
        samples = await scrape(d)
    mine = [
        (name, dict(labels))
        for (name, labels) in samples
        if ("record_id", plan.record_id) in labels
    ]
    assert {name for name, _ in mine} >= {
        "codearts_build_stage_status",
        "codearts_build_stage_status_code",
        "codearts_build_record_complete",
    }
    for name, labels in mine:
        assert (labels["team"], labels["env"]) == ("payments", "prod"), name
    events = [e for e in log_events(log_stream) if e.get("record_id") == plan.record_id]
    assert {e["event"] for e in events} >= {"record_added", "stage_transition"}
    assert all(e["labels"] == {"env": "prod", "team": "payments"} for e in events)
    ghost = [e for e in log_events(log_stream) if e.get("record_id") == UNKNOWN]
    assert {e["event"] for e in ghost} >= {"record_added", "poll_failed", "record_refused"}
    assert all(e["labels"] == {"team": "ghost"} for e in ghost)
