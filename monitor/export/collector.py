"""Per-record metric families, built at scrape time from the watchlist's snapshots.

Nothing here is a long-lived labelled gauge: a record that retires (finished
more than MONITOR_RETENTION seconds ago) or is removed simply is not rendered.
Each record's lines are rendered once per change of its snapshot and cached,
so a scrape is mostly string joins.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, exposition
from prometheus_client.openmetrics import exposition as om_exposition

from monitor.domain import RecordState
from monitor.tracking.watchlist import WatchedRecord, Watchlist

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# (name, help) in output order; the index is the slot in a record's cached lines.
STAGE_FAMILIES: tuple[tuple[str, str], ...] = (
    ("codearts_build_stage_status", "Current status of a stage: 1 for the status it is in."),
    ("codearts_build_stage_status_code", "The stage's status_code as the API gives it."),
    ("codearts_build_stage_duration_seconds", "The stage's duration as the API reports it."),
    (
        "codearts_build_stage_build_duration_seconds",
        "The stage's build_duration (time spent building) as the API reports it.",
    ),
    (
        "codearts_build_stage_pending_seconds",
        "The stage's pending_duration (time waiting to run) as the API reports it.",
    ),
    ("codearts_build_stage_start_timestamp_seconds", "When the stage started, once known."),
    ("codearts_build_stage_finish_timestamp_seconds", "When the stage finished, once known."),
    ("codearts_build_record_complete", "1 when every stage of the record is terminal, else 0."),
)


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def render_record(rec: WatchedRecord) -> tuple[str, ...]:
    """The lines of every per-record family for one record, one string per family."""
    slots: list[list[str]] = [[] for _ in STAGE_FAMILIES]
    extra = "".join(f',{k}="{escape_label(v)}"' for k, v in sorted(rec.labels.items()))
    rid = f'record_id="{escape_label(rec.record_id)}"{extra}'
    snapshot = rec.snapshot
    if snapshot is not None:
        for s in snapshot.stages:
            stage = escape_label(s.key)
            base = f'{rid},build_stage="{stage}",display_name="{escape_label(s.display_name)}"'
            slots[0].append(
                f'codearts_build_stage_status{{{base},status="{escape_label(s.status)}"}} 1\n'
            )
            _add(slots[1], "codearts_build_stage_status_code", base, s.status_code)
            _add(slots[2], "codearts_build_stage_duration_seconds", base, _sec(s.duration_ms))
            _add(
                slots[3],
                "codearts_build_stage_build_duration_seconds",
                base,
                _sec(s.build_duration_ms),
            )
            _add(
                slots[4], "codearts_build_stage_pending_seconds", base, _sec(s.pending_duration_ms)
            )
            _add(slots[5], "codearts_build_stage_start_timestamp_seconds", base, s.start_time)
            _add(slots[6], "codearts_build_stage_finish_timestamp_seconds", base, s.finish_time)
    complete = 1 if rec.state is RecordState.COMPLETE else 0
    slots[7].append(f"codearts_build_record_complete{{{rid}}} {complete}\n")
    return tuple("".join(lines) for lines in slots)


def _sec(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000.0


def _add(lines: list[str], name: str, labels: str, value: float | int | None) -> None:
    if value is not None:
        lines.append(f"{name}{{{labels}}} {format_value(value)}\n")


class RecordCollector:
    """Renders the per-record families of every visible record of a watchlist."""

    def __init__(
        self, watchlist: Watchlist, retention: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._watchlist = watchlist
        self._retention = retention
        self._clock = clock

    def visible(self) -> Iterable[WatchedRecord]:
        """Records whose series are exported: active ones, and finished ones within retention."""
        cutoff = self._clock() - self._retention
        for rec in self._watchlist.records.values():
            if rec.state is RecordState.ACTIVE:
                if rec.snapshot is not None:
                    yield rec
            elif rec.state is RecordState.ERROR:
                continue
            elif rec.finished_at is not None and rec.finished_at >= cutoff:
                yield rec
            elif rec.snapshot is not None:
                rec.snapshot = None  # retired: free the memory, keep the record
                rec.render_cache = None

    def render(self) -> str:
        """The per-record families in the Prometheus text format (valid OpenMetrics too)."""
        blocks: list[tuple[str, ...]] = []
        for rec in self.visible():
            cache = rec.render_cache
            if cache is None or cache[0] != rec.version:
                cache = (rec.version, render_record(rec))
                rec.render_cache = cache
            blocks.append(cache[1])
        out: list[str] = []
        for i, (name, help_text) in enumerate(STAGE_FAMILIES):
            out.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n")
            out.extend(b[i] for b in blocks)
        return "".join(out)


def render_metrics(
    collector: RecordCollector, registry: CollectorRegistry, openmetrics_format: bool
) -> tuple[bytes, str]:
    """The whole /metrics body and its content type."""
    records = collector.render()
    if openmetrics_format:
        om: bytes = om_exposition.generate_latest(registry)  # type: ignore[no-untyped-call]
        rest = om.decode("utf-8")
        return (records + rest).encode("utf-8"), OPENMETRICS_CONTENT_TYPE
    rest = exposition.generate_latest(registry).decode("utf-8")
    return (records + rest).encode("utf-8"), PROMETHEUS_CONTENT_TYPE


def wants_openmetrics(accept: str | None) -> bool:
    """True when the scraper's Accept header asks for OpenMetrics."""
    return bool(accept) and "application/openmetrics-text" in (accept or "")
