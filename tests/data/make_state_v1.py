"""Writes tests/data/state-v1.db with the release before tombstones (schema version 1).

Run with that release's code on the path, not this tree's:

    git archive 216d9f7 | tar -x -C /tmp/v1
    PYTHONPATH=/tmp/v1 .venv/bin/python tests/data/make_state_v1.py tests/data/state-v1.db
"""

from __future__ import annotations

import sys

import anyio

from monitor.domain import RecordSnapshot, RecordState, StageSnapshot
from monitor.store.base import StoredRecord
from monitor.store.sqlite import SCHEMA_VERSION, SqliteStore

NOW = 1_800_000_000.0  # the test opens the file with its clock here
DAY = 86400.0


def stages(record_id: str, status: str) -> RecordSnapshot:
    done = StageSnapshot("initial", "initial", "SUCCESS", 5, 3000, 2000, 1000, 10.0, 13.0, 0)
    last = StageSnapshot("stage1", "Maven", status, 2, 9000, 9000, 0, 13.0, None, 1)
    return RecordSnapshot(record_id, (done, last), NOW - 30)


def rid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


async def main(path: str) -> None:
    assert SCHEMA_VERSION == 1, "run this with the release before tombstones on the path"
    store = SqliteStore(path)
    await store.load()
    # 0: still running; 1: finished a minute ago (within retention);
    # 2..41: finished two days ago (long retired); 42: not found ten days ago (forgotten).
    await store.save(
        StoredRecord(rid(0), labels={"team": "a"}, added_at=NOW - 600,
                     snapshot=stages(rid(0), "RUNNING"), counted=frozenset({"initial"}))
    )  # fmt: skip
    await store.save(
        StoredRecord(rid(1), RecordState.COMPLETE, added_at=NOW - 900, finished_at=NOW - 60,
                     result="SUCCESS", snapshot=stages(rid(1), "SUCCESS"),
                     counted=frozenset({"initial", "stage1"}))
    )  # fmt: skip
    for n in range(2, 42):
        await store.save(
            StoredRecord(rid(n), RecordState.COMPLETE, source="api", added_at=NOW - 2 * DAY - 900,
                         finished_at=NOW - 2 * DAY, result="FAILURE",
                         snapshot=stages(rid(n), "FAILURE"),
                         counted=frozenset({"initial", "stage1"}))
        )  # fmt: skip
    await store.save(
        StoredRecord(rid(42), RecordState.NOT_FOUND, source="discovery", added_at=NOW - 10 * DAY,
                     finished_at=NOW - 10 * DAY)
    )  # fmt: skip
    await store.close()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
