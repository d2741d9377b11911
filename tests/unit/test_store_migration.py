"""A state file written by the release before tombstones is moved forward on first start.

tests/data/state-v1.db was written by that release's own code (see
tests/data/make_state_v1.py for how), not faked here: schema version 1, no
tombstones table, auto_vacuum off, full rows for records finished long ago.
"""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

from monitor.domain import RecordState
from monitor.settings import DEFAULT_TERMINAL_STATUSES
from monitor.store import SqliteStore
from monitor.tracking.watchlist import Watchlist

FIXTURE = Path(__file__).parent.parent / "data" / "state-v1.db"
NOW = 1_800_000_000.0
DAY = 86400.0


def rid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def sql(path: Path, query: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return [tuple(r) for r in conn.execute(query)]


def watchlist(store: SqliteStore) -> Watchlist:
    return Watchlist(
        store,
        terminal_statuses=frozenset(DEFAULT_TERMINAL_STATUSES),
        retention=900,
        forget_after=7 * DAY,
        clock=lambda: NOW,
    )


async def test_a_version_1_file_gains_tombstones_and_its_old_rows_retire(tmp_path: Path) -> None:
    assert sql(FIXTURE, "SELECT version FROM schema_version") == [(1,)]
    assert sql(FIXTURE, "PRAGMA auto_vacuum") == [(0,)]
    path = tmp_path / "monitor.db"
    shutil.copy(FIXTURE, path)

    store = SqliteStore(path)
    wl = watchlist(store)
    assert await wl.restore() == 43
    assert await wl.retire_due() == 41  # what the housekeeper does first, at start
    # Running and recently finished records are restored in full ...
    assert set(wl.records) == {rid(0), rid(1)}
    active = wl.records[rid(0)]
    assert active.state is RecordState.ACTIVE
    assert active.labels == {"team": "a"}
    assert active.counted == frozenset({"initial"})
    assert active.snapshot is not None and len(active.snapshot.stages) == 2
    # ... long-finished ones become tombstones, with their final word.
    assert len(wl.tombstones) == 41
    old = await wl.tombstone(rid(2))
    assert old is not None and (old.result, old.source) == ("FAILURE", "api")
    assert old.finished_at == NOW - 2 * DAY
    lost = await wl.tombstone(rid(42))
    assert lost is not None and lost.state is RecordState.NOT_FOUND
    # The one that finished longer ago than MONITOR_FORGET_AFTER is forgotten at once.
    assert await wl.forget_due() == 1
    await store.compact()
    await store.close()

    assert sql(path, "SELECT version FROM schema_version") == [(2,)]
    assert sql(path, "PRAGMA auto_vacuum") == [(2,)]  # incremental, from now on
    assert sql(path, "SELECT record_id FROM records ORDER BY record_id") == [(rid(0),), (rid(1),)]
    assert sql(path, "SELECT count(*) FROM tombstones") == [(40,)]
    indexes = sql(path, "SELECT name FROM sqlite_master WHERE type='index'")
    assert ("tombstones_finished_at",) in indexes
    assert sql(path, "PRAGMA integrity_check") == [("ok",)]

    # A second start finds version 2 and changes nothing.
    again = watchlist(SqliteStore(path))
    assert await again.restore() == 2
    assert set(again.records) == {rid(0), rid(1)}
    assert len(again.tombstones) == 40
    assert await again.forget_due() == 0


async def test_a_new_file_uses_incremental_vacuum_and_churn_does_not_grow_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "monitor.db"
    store = SqliteStore(path)
    wl = watchlist(store)
    await wl.restore()
    sizes = []
    for round_ in range(3):
        # 300 records pass through: stored in full, retired, then forgotten.
        ids = [f"{round_:08d}-0000-4000-8000-{n:012d}" for n in range(300)]
        for record_id in ids:
            await wl.add(record_id, {"team": "x" * 40})
            wl.records[record_id].state = RecordState.EXPIRED
            wl.records[record_id].finished_at = NOW - 8 * DAY
            await store.save(wl.records[record_id].stored())
        assert await wl.retire_due() == 300
        assert await wl.forget_due() == 300
        await store.compact()
        sizes.append(store.size_bytes())
    await store.close()
    assert sql(path, "PRAGMA auto_vacuum") == [(2,)]
    assert sql(path, "SELECT count(*) FROM records") == [(0,)]
    assert sql(path, "SELECT count(*) FROM tombstones") == [(0,)]
    assert sizes[2] <= sizes[0], sizes  # the pages of forgotten rows are reused or freed
