"""The status page's HTML, built as strings in this one module; everything shown is escaped.

Hand-built with `html.escape` rather than a template engine: two small pages, one
layout, and every value goes through `_e()` here, so a reviewer checks one file.
The page has no script and no external asset; its one inline style is allowed by
its hash in the Content-Security-Policy the server sends (see `CSP`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from monitor.domain import RecordState, ms_to_seconds
from monitor.server.status.history import LastPoll, SeenTransition
from monitor.server.status.timeline import LEGEND, format_seconds, render_timeline, status_class
from monitor.store.base import Tombstone
from monitor.tracking.tracker import record_duration
from monitor.tracking.watchlist import WatchedRecord

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.2em 2em;color:#1d2430;background:#fff}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
a{color:#1b5fb4}code,.mono{font-family:ui-monospace,monospace;font-size:.92em}
table{border-collapse:collapse}th,td{padding:3px 8px;text-align:left;vertical-align:middle}
thead th{border-bottom:2px solid #c9d0da;white-space:nowrap}
tbody tr{border-bottom:1px solid #e6e9ee}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:0}
dl.facts dt{color:#5a6576}dl.facts dd{margin:0}
.muted{color:#5a6576}.err{color:#a4161a}.nav a{margin-right:1em}
.legend span{display:inline-block;margin-right:1.1em;white-space:nowrap}
.legend svg{vertical-align:middle;margin-right:4px}
td.mono{white-space:nowrap;font-size:.8em}.nw{white-space:nowrap}
td.job{max-width:14em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
svg.tl{display:block}svg.tl g rect{stroke:#fff;stroke-width:.6}
.ax{stroke:#8a94a3;fill:#5a6576;font-size:9px;stroke-width:.5}
text.ax{stroke:none}path.ax{fill:none}
.wait{fill:#d5dbe3}.s-run{fill:#3b82f6}.s-ok{fill:#2f9e44}.s-fail{fill:#e03131}
.s-timeout{fill:#f08c00}.s-aborted{fill:#868e96}.s-sched{fill:#9c36b5}.s-unknown{fill:#495057}
.badge{padding:0 6px;border-radius:3px;color:#fff;white-space:nowrap}
.b-active{background:#3b82f6}.b-complete{background:#2f9e44}.b-expired{background:#f08c00}
.b-error,.b-not_found,.b-forbidden{background:#a4161a}.b-retired{background:#868e96}
"""
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP = (
    "default-src 'none'; "
    f"style-src 'sha256-{_STYLE_HASH}'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
ROW_TIMELINE_WIDTH = 280
LINKS: tuple[tuple[str, str], ...] = (
    ("/metrics", "metrics"),
    ("/healthz", "healthz"),
    ("/readyz", "readyz"),
    ("/api/v1/openapi.json", "OpenAPI document"),
)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


@dataclass(frozen=True, slots=True)
class DiscoveryRow:
    """One kind of discovery as the page shows it (jobs, projects)."""

    kind: str
    source: str  # what it was told to look at, e.g. "2 projects (MONITOR_PROJECTS)"
    watched: int | None  # jobs watched; None while not known yet
    excluded: int | None  # jobs left out by MONITOR_JOB_INCLUDE / _EXCLUDE; None: not applicable
    disabled: int | None  # disabled jobs, skipped; None: not applicable or not known yet
    rounds: int  # rounds completed since start
    last_round_at: float | None
    last_outcome: str | None  # of the last round: "success" or its first error outcome


@dataclass(frozen=True, slots=True)
class Overview:
    version: str
    uptime: float
    auth_mode: str
    budget: str
    counts: Mapping[RecordState, int]
    discovery: Sequence[DiscoveryRow]


@dataclass(frozen=True, slots=True)
class Row:
    record: WatchedRecord
    started: float | None
    last_poll: LastPoll | None
    retired: bool


def format_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"


def format_age(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    return f"{format_seconds(max(0.0, now - ts))} ago"


def layout(title: str, body: str, refresh: float | None) -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh:g}">' if refresh else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"{meta}<title>{_e(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def _nav() -> str:
    links = "".join(f'<a href="{_e(h)}">{_e(label)}</a>' for h, label in LINKS)
    return f'<p class="nav"><a href="/">status</a>{links}</p>'


def _badge(state: str) -> str:
    return f'<span class="badge b-{_e(state)}">{_e(state)}</span>'


def _shown_state(row: Row) -> str:
    return "retired" if row.retired else row.record.state.value


def status_text(rec: WatchedRecord) -> str:
    """What a row says a build is doing: its result, or the stage in progress."""
    if rec.state is RecordState.COMPLETE:
        return rec.result or "complete"
    if rec.state is not RecordState.ACTIVE:
        return rec.state.value
    if rec.snapshot is None:
        return "waiting for the first poll"
    for s in rec.snapshot.stages:
        if status_class(s.status) == "s-run":
            return f"{s.status} · {s.display_name}"
    return "RUNNING"


def _job(rec: WatchedRecord) -> str:
    name = rec.labels.get("job_name") or rec.labels.get("job_id")
    return _e(name) if name else '<span class="muted">-</span>'


def _job_title(rec: WatchedRecord) -> str:
    name = rec.labels.get("job_name") or rec.labels.get("job_id")
    return f' title="{_e(name)}"' if name else ""


def _legend() -> str:
    items = "".join(
        f'<span><svg width="14" height="10"><rect class="{c}" width="14" height="10"/></svg>'
        f"{_e(label)}</span>"
        for c, label in LEGEND
    )
    return f'<p class="legend">{items}</p>'


def _poll_cell(poll: LastPoll | None, rec: WatchedRecord, now: float) -> str:
    if poll is None:
        return '<span class="muted">not since start</span>'
    cls = "" if poll.outcome == "success" else ' class="err"'
    title = f' title="{_e(rec.error)}"' if rec.error else ""
    return f"{_e(format_age(poll.at, now))}: <span{cls}{title}>{_e(poll.outcome)}</span>"


def _count(n: int | None) -> str:
    return "-" if n is None else str(n)


def _outcome(outcome: str | None) -> str:
    if outcome is None:
        return '<span class="muted">-</span>'
    cls = "" if outcome == "success" else ' class="err"'
    return f"<span{cls}>{_e(outcome)}</span>"


def _discovery(rows: Sequence[DiscoveryRow], now: float) -> str:
    if not rows:
        return (
            "<p class='muted'>No discovery runs (MONITOR_JOBS and MONITOR_PROJECTS are empty).</p>"
        )
    body = "".join(
        f'<tr data-discovery="{_e(d.kind)}"><td>{_e(d.kind)}</td><td>{_e(d.source)}</td>'
        f"<td>{_count(d.watched)}</td><td>{_count(d.excluded)}</td><td>{_count(d.disabled)}</td>"
        f"<td>{d.rounds}</td><td>{_e(format_age(d.last_round_at, now))}</td>"
        f"<td>{_outcome(d.last_outcome)}</td></tr>"
        for d in rows
    )
    return (
        '<table id="discovery"><thead><tr><th>discovers</th><th>from</th>'
        "<th>jobs watched</th><th>jobs excluded</th><th>jobs disabled</th><th>rounds</th>"
        f"<th>last round</th><th>its outcome</th></tr></thead><tbody>{body}</tbody></table>"
    )


def row_parts(row: Row) -> tuple[str, str]:
    """One build's row around its last-poll cell: (before, after). Both change only with the
    record's snapshot, state or labels; the poll cell (an age) changes with every load."""
    rec = row.record
    duration = record_duration(rec.snapshot) if rec.snapshot is not None else None
    build = rec.labels.get("build_number")
    stages = rec.snapshot.stages if rec.snapshot is not None else ()
    rid = _e(rec.record_id)
    before = (
        f'<tr data-record-id="{rid}"><td class="job"{_job_title(rec)}>{_job(rec)}</td>'
        f"<td>{_e(build) if build else '-'}</td>"
        f'<td class="mono"><a href="/records/{rid}" title="{rid}">{rid[:8]}…</a></td>'
        f"<td>{_badge(_shown_state(row))}</td><td>{_e(status_text(rec))}</td>"
        f'<td class="nw">{_e(format_time(row.started))}</td>'
        f'<td class="nw">{_e(format_seconds(duration))}</td><td class="nw">'
    )
    after = f"</td><td>{render_timeline(stages, width=ROW_TIMELINE_WIDTH)}</td></tr>"
    return before, after


def poll_cell(row: Row, now: float) -> str:
    return _poll_cell(row.last_poll, row.record, now)


def render_index(
    overview: Overview, rows: Sequence[str], total: int, now: float, refresh: float
) -> str:
    """The page at /: the daemon's state, then the rows given (newest first) of `total`."""
    shown = len(rows)
    counts = ", ".join(f"{n} {_e(state.value)}" for state, n in overview.counts.items())
    facts = (
        f"<dt>version</dt><dd>{_e(overview.version)}</dd>"
        f"<dt>uptime</dt><dd>{_e(format_seconds(overview.uptime))}</dd>"
        f"<dt>auth mode</dt><dd>{_e(overview.auth_mode)}</dd>"
        f"<dt>request budget</dt><dd>{_e(overview.budget)}</dd>"
        f"<dt>records</dt><dd>{counts}</dd>"
        f"<dt>page time</dt><dd>{_e(format_time(now))}</dd>"
    )
    out = [
        "<h1>codearts-stage-monitor</h1>",
        _nav(),
        f'<dl class="facts">{facts}</dl>',
        "<h2>Discovery</h2>",
        _discovery(overview.discovery, now),
        "<h2>Builds</h2>",
        f"<p>Active builds and those finished within MONITOR_RETENTION, newest first: "
        f"showing {shown} of {total}.</p>",
        _legend(),
        '<table id="builds"><thead><tr><th>job</th><th>build</th><th>record id</th>'
        "<th>state</th><th>status / result</th><th>started</th><th>duration</th>"
        "<th>last poll</th><th>stages</th></tr></thead><tbody>",
        *rows,
        "</tbody></table>",
    ]
    if total > shown:
        out.append(
            f'<p class="more">and {total - shown} more not shown (MONITOR_STATUS_PAGE_ROWS); '
            "the admin API lists them all: /api/v1/records</p>"
        )
    return layout("codearts-stage-monitor", "".join(out), refresh)


def stop_reason(row: Row, confirmations: int) -> str:
    """Why a record is not polled any more (or that it still is)."""
    rec = row.record
    if row.retired:
        return (
            f"retired: {rec.state.value} more than MONITOR_RETENTION ago, "
            "so its series are no longer exported"
        )
    reasons = {
        RecordState.ACTIVE: "still polled: not every stage has reached a terminal status",
        RecordState.COMPLETE: f"complete: every stage is terminal (result {rec.result or '-'})",
        RecordState.EXPIRED: "expired: watched longer than MONITOR_MAX_WATCH without finishing",
        RecordState.NOT_FOUND: f"not found: the API answered 404 {confirmations} times in a row",
        RecordState.FORBIDDEN: f"forbidden: the API answered 403 {confirmations} times in a row",
        RecordState.ERROR: f"never polled: {rec.error or 'not a record id'}",
    }
    return reasons[rec.state]


def render_record(
    row: Row,
    transitions: Sequence[SeenTransition],
    now: float,
    refresh: float,
    confirmations: int,
) -> str:
    """The page at /records/{id}: one build's labels, state, stages and recent transitions."""
    rec = row.record
    labels = ", ".join(f"{_e(k)}={_e(v)}" for k, v in sorted(rec.labels.items())) or "none"
    stages = rec.snapshot.stages if rec.snapshot is not None else ()
    facts = (
        f'<dt>record id</dt><dd class="mono">{_e(rec.record_id)}</dd>'
        f"<dt>state</dt><dd>{_badge(_shown_state(row))} {_e(stop_reason(row, confirmations))}</dd>"
        f"<dt>status / result</dt><dd>{_e(status_text(rec))}</dd>"
        f"<dt>labels</dt><dd>{labels}</dd>"
        f"<dt>source</dt><dd>{_e(rec.source)}</dd>"
        f"<dt>added</dt><dd>{_e(format_time(rec.added_at))}</dd>"
        f"<dt>finished</dt><dd>{_e(format_time(rec.finished_at))}</dd>"
        f"<dt>polls</dt><dd>{rec.polls} since start, {rec.consecutive_errors} failed in a row</dd>"
        f"<dt>last poll</dt><dd>{_poll_cell(row.last_poll, rec, now)}</dd>"
        f"<dt>last poll error</dt><dd class='err'>{_e(rec.error) if rec.error else '-'}</dd>"
    )
    out = [
        f"<h1>Build {_e(rec.record_id)}</h1>",
        _nav(),
        f'<dl class="facts">{facts}</dl>',
        "<h2>Stages</h2>",
        _legend(),
        f'<div id="timeline">{render_timeline(stages, width=900, bar=24, ticks=10)}</div>',
    ]
    if rec.snapshot is None:
        out.append("<p class='muted'>No stages known (not polled yet, or retired).</p>")
    out.append(
        '<table id="stages"><thead><tr><th>key</th><th>display name</th><th>status</th>'
        "<th>code</th><th>pending</th><th>duration</th><th>start</th><th>finish</th>"
        "</tr></thead><tbody>"
    )
    for s in stages:
        out.append(
            f'<tr data-stage="{_e(s.key)}"><td class="mono">{_e(s.key)}</td>'
            f"<td>{_e(s.display_name)}</td><td>{_e(s.status)}</td>"
            f"<td>{_e('-' if s.status_code is None else s.status_code)}</td>"
            f"<td>{_e(format_seconds(ms_to_seconds(s.pending_duration_ms)))}</td>"
            f"<td>{_e(format_seconds(ms_to_seconds(s.duration_ms)))}</td>"
            f"<td>{_e(format_time(s.start_time))}</td><td>{_e(format_time(s.finish_time))}</td></tr>"
        )
    out.append("</tbody></table><h2>Recent transitions</h2>")
    if not transitions:
        out.append("<p class='muted'>None seen since the daemon started.</p>")
    else:
        out.append(
            '<table id="transitions"><thead><tr><th>seen</th><th>stage</th><th>from</th>'
            "<th>to</th><th>code</th></tr></thead><tbody>"
        )
        for seen in transitions:
            t = seen.transition
            out.append(
                f"<tr><td>{_e(format_time(seen.at))}</td>"
                f"<td>{_e(t.display_name)} <span class='muted mono'>{_e(t.build_stage)}</span></td>"
                f"<td>{_e(t.from_status or '(new)')}</td><td>{_e(t.to_status)}</td>"
                f"<td>{_e('-' if t.status_code is None else t.status_code)}</td></tr>"
            )
        out.append("</tbody></table>")
    return layout(f"build {rec.record_id}", "".join(out), refresh)


def render_retired(tombstone: Tombstone, forget_after: float, refresh: float) -> str:
    """The page at /records/{id} for a retired record: the final word its tombstone kept."""
    t = tombstone
    forgotten = t.finished_at + forget_after
    facts = (
        f'<dt>record id</dt><dd class="mono">{_e(t.record_id)}</dd>'
        f"<dt>state</dt><dd>{_badge('retired')} retired: {_e(t.state.value)} more than "
        "MONITOR_RETENTION ago, so its series are no longer exported and it is not polled</dd>"
        f"<dt>final state</dt><dd>{_badge(t.state.value)}</dd>"
        f"<dt>result</dt><dd>{_e(t.result or '-')}</dd>"
        f"<dt>finished</dt><dd>{_e(format_time(t.finished_at))}</dd>"
        f"<dt>source</dt><dd>{_e(t.source)}</dd>"
        f"<dt>forgotten</dt><dd>{_e(format_time(forgotten))} (MONITOR_FORGET_AFTER after it "
        "finished); until then it is not watched again from any source</dd>"
    )
    out = [
        f"<h1>Build {_e(t.record_id)}</h1>",
        _nav(),
        f'<dl class="facts" id="retired">{facts}</dl>',
        "<p class='muted'>Only this final word is kept of a retired record: its stages, "
        "labels and transitions were dropped.</p>",
    ]
    return layout(f"build {t.record_id}", "".join(out), refresh)


def render_problem(title: str, message: str, hint: str = "") -> str:
    """A refusal (401, 404, ...) as a small page that says why."""
    body = f"<h1>{_e(title)}</h1><p>{_e(message)}</p>"
    if hint:
        body += f"<p class='muted'>{_e(hint)}</p>"
    return layout(title, body + _nav(), None)
