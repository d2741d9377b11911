"""The state store in one embedded SQLite file, so a restarted monitor resumes where it was.

One row per watched record holds its state, labels and source, the last
snapshot seen (every stage's last status and values, as JSON) and the keys of
the stages already counted as finished. Each `save` is one statement, hence one
transaction, and is skipped when the row would not change.

Calls run in a worker thread (sqlite3 blocks), one at a time and in the order
they were made, so a `delete` is never overtaken by an earlier `save`.

The database is opened in WAL mode with `synchronous=NORMAL`: a committed write
survives the process being killed (kill -9, OOM); only a power loss can lose the
last few. `locking_mode=EXCLUSIVE` keeps a second monitor from using the same
file at the same time.

Nothing here ever deletes or recreates a database it cannot read: a corrupt,
foreign or newer file is a StoreError that names the file, raised by the first
call (the daemon's `load` at start-up).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from monitor.domain import RecordSnapshot, RecordState, StageSnapshot
from monitor.store.base import StoredRecord, StoreError

SCHEMA_VERSION = 1
MEMORY = ":memory:"
BUSY_TIMEOUT_MS = 2000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    record_id   TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    source      TEXT NOT NULL,
    labels      TEXT NOT NULL,  -- JSON object
    added_at    REAL NOT NULL,  -- unix seconds
    finished_at REAL,
    result      TEXT,
    error       TEXT,
    counted     TEXT NOT NULL,  -- JSON array: stage keys already counted as finished
    snapshot    TEXT            -- JSON: fetched_at and every stage as last seen
);
"""
_UPSERT = (
    "INSERT OR REPLACE INTO records (record_id, state, source, labels, added_at, finished_at, "
    "result, error, counted, snapshot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT = (
    "SELECT record_id, state, source, labels, added_at, finished_at, result, error, counted, "
    "snapshot FROM records ORDER BY added_at, record_id"
)
_STAGE_FIELDS = StageSnapshot.__slots__
__all__ = ["MEMORY", "SqliteStore", "StoreError", "decode", "encode"]

Row = tuple[Any, ...]
T = TypeVar("T")


class SqliteStore:
    """A StateStore in a SQLite file (`":memory:"` works too, for tests)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._conn: sqlite3.Connection | None = None
        self._rows: dict[str, Row] = {}  # what the file holds, to skip writes that change nothing
        self._lock: anyio.Lock | None = None
        self.writes = 0  # statements that changed the file
        self.skipped = 0  # saves that would not have changed anything

    # --- the StateStore protocol --------------------------------------------------------

    async def load(self) -> list[StoredRecord]:
        rows = await self._call(self._load_rows)
        out = []
        for row in rows:
            out.append(self._decode(row))
            self._rows[row[0]] = tuple(row)
        return out

    async def save(self, record: StoredRecord) -> None:
        row = encode(record)
        if self._rows.get(record.record_id) == row:
            self.skipped += 1
            return
        await self._call(lambda conn: conn.execute(_UPSERT, row))
        self._rows[record.record_id] = row
        self.writes += 1

    async def delete(self, record_id: str) -> None:
        if record_id not in self._rows:
            return
        await self._call(
            lambda conn: conn.execute("DELETE FROM records WHERE record_id = ?", (record_id,))
        )
        del self._rows[record_id]
        self.writes += 1

    async def close(self) -> None:
        if self._conn is None:
            return
        lock = self._get_lock()
        async with lock:
            conn, self._conn = self._conn, None
            await anyio.to_thread.run_sync(_close, conn)

    # --- plumbing -----------------------------------------------------------------------

    def _get_lock(self) -> anyio.Lock:
        if self._lock is None:  # created on first use: it needs a running event loop
            self._lock = anyio.Lock()
        return self._lock

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        async with self._get_lock():
            return await anyio.to_thread.run_sync(self._run, fn)

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._open()
        try:
            return fn(self._conn)
        except sqlite3.Error as exc:
            raise StoreError(f"state file {self.path}: {_describe(exc)}") from exc

    def _open(self) -> sqlite3.Connection:
        where = f"state file {self.path}"
        if self.path != MEMORY:
            parent = Path(self.path).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"{where}: cannot create its directory {parent}: {exc.strerror or exc}"
                ) from None
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,  # autocommit: each statement is its own transaction
                check_same_thread=False,  # used from worker threads, one call at a time
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{where}: cannot open: {_describe(exc)}") from None
        try:
            _prepare(conn)
        except StoreError as exc:
            conn.close()
            raise StoreError(f"{where}: {exc}") from None
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"{where}: {_describe(exc)}") from None
        return conn

    def _load_rows(self, conn: sqlite3.Connection) -> list[Row]:
        cur = conn.execute(_SELECT)
        return [tuple(r) for r in cur.fetchall()]

    def _decode(self, row: Row) -> StoredRecord:
        try:
            return decode(row)
        except (ValueError, TypeError, KeyError) as exc:
            raise StoreError(
                f"state file {self.path}: record {row[0]!r} cannot be read ({exc}); "
                "the file is damaged or was written by other software"
            ) from None


def _prepare(conn: sqlite3.Connection) -> None:
    """Set the file up and prove it is ours, readable and writable."""
    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() not in ("wal", "memory"):
        raise StoreError(f"cannot switch to WAL journal mode (got {mode})")
    conn.execute("PRAGMA synchronous=NORMAL")
    check = conn.execute("PRAGMA quick_check").fetchall()
    if [tuple(r) for r in check] != [("ok",)]:
        problems = "; ".join(str(r[0]) for r in check[:3])
        raise StoreError(f"is corrupt ({problems}); move it away to start afresh")
    conn.execute("BEGIN IMMEDIATE")  # fails now, not later, if the file is read-only or in use
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "schema_version" not in tables and tables:
            raise StoreError(
                "is a SQLite database of something else (no schema_version table); "
                "point MONITOR_STATE_PATH at a new file"
            )
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
        if not versions:
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif versions != [SCHEMA_VERSION]:
            raise StoreError(
                f"has schema version {versions}, this monitor knows {SCHEMA_VERSION}: "
                "it was written by another version; upgrade, or point MONITOR_STATE_PATH elsewhere"
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _close(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _describe(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "file is not a database" in text or "malformed" in text:
        return f"is not a SQLite database or is corrupt ({text}); move it away to start afresh"
    if "readonly" in text or "read-only" in text:
        return f"is not writable ({text})"
    if "locked" in text:
        return f"is in use by another process ({text}); only one monitor may use a state file"
    if "unable to open" in text:
        return f"cannot be opened ({text}); check the path and its permissions"
    return text


# --- rows <-> records (plain functions, so they are easy to test) --------------------------


def encode(record: StoredRecord) -> Row:
    """The row that stores `record`."""
    snapshot = None
    if record.snapshot is not None:
        snapshot = json.dumps(
            {
                "fetched_at": record.snapshot.fetched_at,
                "stages": [
                    {f: getattr(s, f) for f in _STAGE_FIELDS} for s in record.snapshot.stages
                ],
            },
            separators=(",", ":"),
        )
    return (
        record.record_id,
        record.state.value,
        record.source,
        json.dumps(record.labels, sort_keys=True, separators=(",", ":")),
        record.added_at,
        record.finished_at,
        record.result,
        record.error,
        json.dumps(sorted(record.counted), separators=(",", ":")),
        snapshot,
    )


def decode(row: Row) -> StoredRecord:
    """The record a row stores; raises ValueError/TypeError/KeyError on a damaged row."""
    (record_id, state, source, labels, added_at, finished_at, result, error, counted, snap) = row
    labels_d = json.loads(labels)
    if not isinstance(labels_d, dict):
        raise ValueError("labels is not an object")
    snapshot = None
    if snap is not None:
        data = json.loads(snap)
        stages = tuple(
            StageSnapshot(**{f: s[f] for f in _STAGE_FIELDS if f in s}) for s in data["stages"]
        )
        snapshot = RecordSnapshot(record_id, stages, float(data["fetched_at"]))
    return StoredRecord(
        record_id=str(record_id),
        state=RecordState(state),
        labels={str(k): str(v) for k, v in labels_d.items()},
        source=str(source),
        added_at=float(added_at),
        finished_at=None if finished_at is None else float(finished_at),
        result=result,
        error=error,
        snapshot=snapshot,
        counted=frozenset(str(k) for k in json.loads(counted)),
    )
