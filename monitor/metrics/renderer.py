"""Per-record metric families, built at scrape time from the watchlist's snapshots.

Nothing here is a long-lived labelled gauge: a record whose retention ended
(finished more than MONITOR_RETENTION seconds ago) or that was removed simply is
not rendered. Each record's lines are rendered once per change of its snapshot
and cached here, keyed by record id and version, so a scrape is mostly joins.
The watchlist tells the collector when a record leaves (`forget`), and its
entry goes; a scrape never changes a record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, exposition
from prometheus_client.openmetrics import exposition as om_exposition

from monitor.domain import RecordState, StageSnapshot, ms_to_seconds
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

_FAMILY_HEADS = tuple(
    f"# HELP {name} {help_text}\n# TYPE {name} gauge\n".encode()
    for name, help_text in STAGE_FAMILIES
)


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


# One stage's lines for the first seven families ("" where a value is unknown).
StageLines = tuple[str, ...]
StageCache = dict[str, tuple[StageSnapshot, StageLines]]
_STAGE_VALUE_FAMILIES = tuple(name for name, _ in STAGE_FAMILIES[1:7])


def _record_labels(rec: WatchedRecord) -> str:
    extra = "".join(f',{k}="{escape_label(v)}"' for k, v in sorted(rec.labels.items()))
    return f'record_id="{escape_label(rec.record_id)}"{extra}'


def _stage_lines(rid: str, s: StageSnapshot) -> StageLines:
    base = (
        f'{rid},build_stage="{escape_label(s.key)}",display_name="{escape_label(s.display_name)}"'
    )
    values = (
        s.status_code,
        ms_to_seconds(s.duration_ms),
        ms_to_seconds(s.build_duration_ms),
        ms_to_seconds(s.pending_duration_ms),
        s.start_time,
        s.finish_time,
    )
    return (
        f'codearts_build_stage_status{{{base},status="{escape_label(s.status)}"}} 1\n',
        *(
            "" if v is None else f"{name}{{{base}}} {format_value(v)}\n"
            for name, v in zip(_STAGE_VALUE_FAMILIES, values, strict=True)
        ),
    )


def render_record_cached(
    rec: WatchedRecord, previous: tuple[str, StageCache] | None = None
) -> tuple[tuple[str, ...], tuple[str, StageCache]]:
    """Every per-record family's lines for one record (one string per family), reusing
    the lines of stages unchanged since `previous`.

    A poll usually moves one stage of a record (the running one): re-rendering
    only that stage keeps a scrape after a busy interval cheap.
    Returns the families and the stage cache to pass next time.
    """
    rid = _record_labels(rec)
    old: StageCache = previous[1] if previous is not None and previous[0] == rid else {}
    cache: StageCache = {}
    per_stage: list[StageLines] = []
    snapshot = rec.snapshot
    if snapshot is not None:
        for s in snapshot.stages:
            hit = old.get(s.key)
            lines = hit[1] if hit is not None and hit[0] == s else _stage_lines(rid, s)
            cache[s.key] = (s, lines)
            per_stage.append(lines)
    complete = 1 if rec.state is RecordState.COMPLETE else 0
    families = tuple(map("".join, zip(*per_stage, strict=True))) if per_stage else ("",) * 7
    return (*families, f"codearts_build_record_complete{{{rid}}} {complete}\n"), (rid, cache)


# A record's cached lines: (version they were rendered at, one bytes per family,
# the stage cache to reuse for its next rendering).
CacheEntry = tuple[int, tuple[bytes, ...], tuple[str, StageCache]]


class RecordCollector:
    """Renders the per-record families of every exported record of a watchlist."""

    def __init__(
        self, watchlist: Watchlist, exported: Callable[[WatchedRecord], bool] | None = None
    ) -> None:
        self._watchlist = watchlist
        # With replicas, each record's series come from its owner only.
        self._exported = exported
        self._cache: dict[str, CacheEntry] = {}
        self.renders = 0  # records rendered (cache misses), for tests and benchmarks

    def forget(self, record_id: str) -> None:
        """Drop a record's cached lines (the watchlist calls it when the record leaves)."""
        self._cache.pop(record_id, None)

    def cached(self, record_id: str) -> CacheEntry | None:
        return self._cache.get(record_id)

    def visible(self) -> Iterable[WatchedRecord]:
        """Records whose series are exported and that have something to show."""
        exported = self._exported
        for rec in self._watchlist.exported():
            if exported is not None and not exported(rec):
                continue
            if rec.state is RecordState.ACTIVE:
                if rec.snapshot is not None:
                    yield rec
            elif rec.state is not RecordState.ERROR:
                yield rec

    def render_parts(self) -> list[bytes]:
        """The per-record families as byte strings to join, in output order.

        Each record's lines are cached as bytes (encoded once per change), and the
        caller joins everything once: a scrape of thousands of records makes one
        large buffer, not three (join, concatenate, encode).
        """
        blocks: list[tuple[bytes, ...]] = []
        store = self._cache
        for rec in self.visible():
            cache = store.get(rec.record_id)
            if cache is None or cache[0] != rec.version:
                families, stages = render_record_cached(rec, cache[2] if cache else None)
                cache = (rec.version, tuple(f.encode("utf-8") for f in families), stages)
                store[rec.record_id] = cache
                self.renders += 1
            blocks.append(cache[1])
        parts: list[bytes] = []
        for i, head in enumerate(_FAMILY_HEADS):
            parts.append(head)
            parts.extend([line for b in blocks if (line := b[i])])
        return parts

    def render(self) -> str:
        """The per-record families in the Prometheus text format (valid OpenMetrics too)."""
        return b"".join(self.render_parts()).decode("utf-8")


def render_metrics(
    collector: RecordCollector, registry: CollectorRegistry, openmetrics_format: bool
) -> tuple[bytes, str]:
    """The whole /metrics body and its content type."""
    parts = collector.render_parts()
    if openmetrics_format:
        om: bytes = om_exposition.generate_latest(registry)  # type: ignore[no-untyped-call]
        parts.append(om)
        return b"".join(parts), OPENMETRICS_CONTENT_TYPE
    parts.append(exposition.generate_latest(registry))
    return b"".join(parts), PROMETHEUS_CONTENT_TYPE


def wants_openmetrics(accept: str | None) -> bool:
    """True when the scraper's Accept header asks for OpenMetrics."""
    return bool(accept) and "application/openmetrics-text" in (accept or "")
