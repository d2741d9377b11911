"""Watchlist sources that are files or settings (the admin API and discovery add more)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio

from monitor.domain.ids import is_valid_record_id
from monitor.domain.labels import label_errors
from monitor.files import MISSING, Stamp, file_stamp
from monitor.logging import get_logger
from monitor.tracking.watchlist import Watchlist

FILE_SOURCE = "file"


@dataclass(frozen=True, slots=True)
class WatchlistEntry:
    record_id: str
    labels: dict[str, str]


def parse_watchlist(text: str) -> tuple[list[WatchlistEntry], list[str]]:
    """Entries and per-line errors of a watchlist file.

    One record a line: `RECORD_ID [name=value ...]`; `#` starts a comment; blank
    lines are ignored. A bad line is reported and skipped; the others still count.
    """
    entries: dict[str, WatchlistEntry] = {}
    errors: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        record_id, *rest = line.split()
        if not is_valid_record_id(record_id):
            errors.append(f"line {lineno}: {record_id!r} is not a record id")
            continue
        labels: dict[str, str] = {}
        bad = False
        for item in rest:
            name, sep, value = item.partition("=")
            if not sep:
                errors.append(f"line {lineno}: {item!r} is not name=value")
                bad = True
                continue
            labels[name] = value
        problems = label_errors(labels)
        if bad or problems:
            errors.extend(f"line {lineno}: {p}" for p in problems)
            continue
        entries[record_id] = WatchlistEntry(record_id, labels)
    return list(entries.values()), errors


class WatchlistFile:
    """Keeps the watchlist in step with a file, re-read whenever it changes.

    Records that leave the file stop being watched. A file that cannot be read
    keeps the last good list (and says so in the log).
    """

    def __init__(self, path: Path, watchlist: Watchlist, interval: float = 5.0) -> None:
        self._path = path
        self._watchlist = watchlist
        self._interval = interval
        self._stamp: Stamp | None = None
        self._log = get_logger("monitor.watchlist_file")

    async def sync(self, *, force: bool = False) -> bool:
        """Re-read the file if it changed (or always, with `force`); True when it was read."""
        try:
            stamp = file_stamp(self._path)
        except OSError as exc:
            if self._stamp != MISSING:
                self._log.error(
                    "watchlist_file_unreadable", path=str(self._path), error=exc.strerror
                )
                self._stamp = MISSING
            return False
        if stamp == self._stamp and not force:
            return False
        try:
            text = self._path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self._log.error("watchlist_file_unreadable", path=str(self._path), error=str(exc))
            return False
        self._stamp = stamp
        entries, errors = parse_watchlist(text)
        for err in errors:
            self._log.warning("watchlist_line_invalid", path=str(self._path), error=err)
        await self._watchlist.reconcile(FILE_SOURCE, {e.record_id: e.labels for e in entries})
        self._log.info(
            "watchlist_file_loaded",
            path=str(self._path),
            records=len(entries),
            invalid_lines=len(errors),
        )
        return True

    async def run(self) -> None:
        while True:
            await anyio.sleep(self._interval)
            await self.sync()
