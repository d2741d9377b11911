"""The daemon's own status page: GET / (every visible build) and GET /records/{record_id}.

It renders from the watchlist's in-memory records (the snapshots /metrics exports)
and what `TransitionHistory` kept; it never calls the CodeArts API, so a page load
costs a few milliseconds of the event loop and no request budget.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from aiohttp import web

from monitor.domain import RecordState
from monitor.server.admin.errors import ApiProblem
from monitor.server.status.discovery import discovery_rows
from monitor.server.status.history import TransitionHistory
from monitor.server.status.page import (
    CSP,
    DiscoveryRow,
    Overview,
    Row,
    poll_cell,
    render_index,
    render_problem,
    render_record,
    render_retired,
    row_parts,
)
from monitor.tracking.watchlist import WatchedRecord, Watchlist

__all__ = [
    "DiscoveryRow",
    "StatusPage",
    "TransitionHistory",
    "add_status_routes",
    "admin_read_guard",
    "discovery_rows",
]

DEFAULT_ROWS = 200
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# A read refused by the admin API's check: (status, message, extra headers).
Refusal = tuple[int, str, dict[str, str]]
ReadGuard = Callable[[web.Request], Refusal | None]


class Budget(Protocol):
    """The request budget in force (the daemon's rate gate)."""

    rate: float
    burst: int
    paused_until: float  # monotonic

    def current_rate(self, now: float | None = None) -> float: ...


def admin_read_guard(check: Callable[[web.Request], None]) -> ReadGuard:
    """The admin API's read check (raising its ApiProblem) as a guard for these pages,
    so both refuse the same requests with the same token comparison and log line."""

    def guard(request: web.Request) -> Refusal | None:
        try:
            check(request)
        except ApiProblem as problem:
            return problem.status, problem.message, problem.headers
        return None

    return guard


def _started(rec: WatchedRecord) -> float | None:
    if rec.snapshot is not None:
        starts = [s.start_time for s in rec.snapshot.stages if s.start_time is not None]
        if starts:
            return min(starts)
    return None


class StatusPage:
    """The two pages over one watchlist."""

    def __init__(
        self,
        watchlist: Watchlist,
        history: TransitionHistory,
        *,
        version: str,
        auth_mode: str,
        budget: Budget,
        retention: float,
        rows: int = DEFAULT_ROWS,
        refresh: float = 5.0,
        refusal_confirmations: int = 3,
        discovery: Callable[[], Sequence[DiscoveryRow]] = lambda: (),
        read_guard: ReadGuard | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._watchlist = watchlist
        self._history = history
        self._version = version
        self._auth_mode = auth_mode
        self._budget = budget
        self._retention = retention
        self._rows = rows
        self._refresh = refresh
        self._confirmations = refusal_confirmations
        self._discovery = discovery
        self._guard = read_guard
        self._clock = clock
        self._monotonic = monotonic
        self._started_at = clock()
        # record id -> (version, start, sort key) and -> (version, row before, row after)
        self._starts: dict[str, tuple[int, float | None, float]] = {}
        self._row_html: dict[str, tuple[int, str, str]] = {}

    # --- what is shown ---

    def _retired(self, rec: WatchedRecord, now: float) -> bool:
        if rec.state is RecordState.ACTIVE:
            return False
        return rec.finished_at is None or rec.finished_at < now - self._retention

    def _row(self, rec: WatchedRecord, now: float, started: float | None) -> Row:
        return Row(rec, started, self._history.last_poll(rec.record_id), self._retired(rec, now))

    def budget_text(self) -> str:
        b = self._budget
        text = f"{b.rate:g} requests/s, burst {b.burst}"
        current = b.current_rate()
        if current < b.rate:
            text += f"; now {round(current, 2):g}/s after a throttle"
        paused = b.paused_until - self._monotonic()
        if paused > 0:
            text += f"; paused for {paused:.0f} s more (the API said 429)"
        return text

    def overview(self, now: float) -> Overview:
        return Overview(
            version=self._version,
            uptime=now - self._started_at,
            auth_mode=self._auth_mode,
            budget=self.budget_text(),
            counts=self._watchlist.counts(),
            discovery=list(self._discovery()),
        )

    def index_html(self) -> str:
        """The / page: at most `rows` builds, newest first, and how many more there are.

        Two caches keep a load cheap with thousands of records, both rebuilt on every
        load from what it used, so neither outgrows the watchlist or the page: each
        visible record's start (its sort key) and each shown row's HTML, both keyed by
        the record's version (bumped whenever its snapshot, state or labels change).
        """
        now = self._clock()
        cutoff = now - self._retention
        starts, self._starts = self._starts, {}
        keyed = []
        for rid, rec in self._watchlist.records.items():
            if rec.state is not RecordState.ACTIVE and (
                rec.finished_at is None or rec.finished_at < cutoff
            ):
                continue  # retired
            hit = starts.get(rid)
            if hit is None or hit[0] != rec.version:
                started = _started(rec)
                hit = (rec.version, started, started or rec.added_at)
            self._starts[rid] = hit
            keyed.append((hit[2], rid, hit[1], rec))
        newest = heapq.nlargest(self._rows, keyed)
        cached, self._row_html = self._row_html, {}
        rows = []
        for _, rid, started, rec in newest:
            row = self._row(rec, now, started)
            parts = cached.get(rid)
            if parts is None or parts[0] != rec.version:
                parts = (rec.version, *row_parts(row))
            self._row_html[rid] = parts
            rows.append(parts[1] + poll_cell(row, now) + parts[2])
        return render_index(self.overview(now), rows, len(keyed), now, self._refresh)

    def record_html(self, rec: WatchedRecord) -> str:
        now = self._clock()
        return render_record(
            self._row(rec, now, _started(rec)),
            self._history.transitions(rec.record_id),
            now,
            self._refresh,
            self._confirmations,
        )

    # --- HTTP ---

    def _refused(self, request: web.Request) -> web.Response | None:
        if self._guard is None:
            return None
        refusal = self._guard(request)
        if refusal is None:
            return None
        status, message, headers = refusal
        page = render_problem(
            "401 Unauthorized" if status == 401 else f"{status} Refused",
            f"This page is protected (MONITOR_ADMIN_READ_PROTECTED=true): {message}.",
            "A browser does not send it by itself: use, for example, "
            f"curl -H 'Authorization: Bearer <MONITOR_ADMIN_TOKEN>' {request.path[:200]}, "
            "or a proxy that adds the header.",
        )
        return _html(page, status, headers)

    async def index(self, request: web.Request) -> web.Response:
        return self._refused(request) or _html(self.index_html())

    async def record(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        record_id = request.match_info["record_id"]
        rec = self._watchlist.records.get(record_id)
        if rec is None:
            # Retired: the store kept its final word (the admin API's GET answers the same).
            tombstone = await self._watchlist.tombstone(record_id)
            if tombstone is not None:
                return _html(render_retired(tombstone, self._watchlist.forget_after, self._refresh))
            page = render_problem(
                "404 Not Found",
                f"Record {record_id[:80]} is not watched.",
                "It was never added, or was removed; the status page at / lists what is.",
            )
            return _html(page, 404)
        return _html(self.record_html(rec))


def _html(body: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    resp = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    resp.headers.update(HEADERS)
    if headers:
        resp.headers.update(headers)
    return resp


def add_status_routes(app: web.Application, page: StatusPage) -> None:
    """Mount / and /records/{record_id} on the daemon's application (before it starts)."""
    app.router.add_get("/", page.index)
    app.router.add_get("/records/{record_id}", page.record)
