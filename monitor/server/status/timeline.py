"""A build's stages as one inline SVG bar: the wait drawn light, the run in its status's colour.

Stages are laid end to end in sequence order and each is as wide as its `duration`
(the API's milliseconds), its first `pending_duration` drawn as the wait. Only
durations are used, never start/finish times: the reference does not say whether
`start_time` marks the queueing or the running of a stage, and durations are what
the metrics export, so the bar and the dashboards agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from monitor.domain import StageSnapshot

# Status -> CSS class. Statuses outside this map are in progress (the running-side
# vocabulary is not documented), drawn as running.
STATUS_CLASSES: dict[str, str] = {
    "SUCCESS": "s-ok",
    "FAILURE": "s-fail",
    "TIMEOUT": "s-timeout",
    "ABORTED": "s-aborted",
    "SCHEDULE_FAILURE": "s-sched",
    "UNKNOWN": "s-unknown",
    "NULL": "s-unknown",
}
RUNNING_CLASS = "s-run"
WAIT_CLASS = "wait"
# What the legend shows, in order: (CSS class, label).
LEGEND: tuple[tuple[str, str], ...] = (
    (WAIT_CLASS, "waiting (pending)"),
    (RUNNING_CLASS, "in progress"),
    ("s-ok", "SUCCESS"),
    ("s-fail", "FAILURE"),
    ("s-timeout", "TIMEOUT"),
    ("s-aborted", "ABORTED"),
    ("s-sched", "SCHEDULE_FAILURE"),
    ("s-unknown", "UNKNOWN / none"),
)


def status_class(status: str) -> str:
    return STATUS_CLASSES.get(status, RUNNING_CLASS)  # statuses arrive upper-cased


@dataclass(frozen=True, slots=True)
class Segment:
    """One stage on the bar, in seconds from the start of the first stage."""

    stage: StageSnapshot
    offset: float
    wait: float
    run: float


def segments(stages: Sequence[StageSnapshot]) -> tuple[list[Segment], float]:
    """Each stage's place on the bar, and the bar's length in seconds."""
    out = []
    t = 0.0
    for s in stages:
        pending = (s.pending_duration_ms or 0) / 1000.0
        if s.duration_ms is not None:
            length = s.duration_ms / 1000.0
        else:
            length = pending + (s.build_duration_ms or 0) / 1000.0
        length = max(0.0, length)
        wait = min(max(0.0, pending), length)
        out.append(Segment(s, t, wait, length - wait))
        t += length
    return out, t


def format_seconds(seconds: float | None) -> str:
    """A duration as people read it: 850 ms, 42 s, 3 min 05 s, 2 h 10 min."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)


def _tick_step(total: float, max_ticks: int) -> float:
    """The smallest round step (seconds, minutes, hours) that gives at most `max_ticks` ticks."""
    raw = total / max(1, max_ticks)
    for step in _STEPS:
        if step >= raw:
            return float(step)
    return 3600.0 * math.ceil(raw / 3600.0)


def _axis_label(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def render_timeline(
    stages: Sequence[StageSnapshot], *, width: int = 320, bar: int = 14, ticks: int = 4
) -> str:
    """The SVG for one build. Each stage is a <g data-stage=KEY> holding its hover <title>
    and its wait and run rects (a part of zero length is left out)."""
    segs, total = segments(stages)
    height = bar + 16
    scale = width / total if total > 0 else 0.0
    parts = [
        f'<svg class="tl" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="stage timeline, {format_seconds(total)}">'
    ]
    if not segs:
        parts.append(f'<text class="ax" x="0" y="{bar - 2}">no stages yet</text>')
    rect_tail = f'" y="1" height="{bar}" width="'
    for seg in segs:
        s = seg.stage
        title = escape(
            f"{s.display_name} ({s.key}): {s.status}, waited {format_seconds(seg.wait)}, "
            f"ran {format_seconds(seg.run)}"
        )
        parts.append(f'<g data-stage="{escape(s.key)}"><title>{title}</title>')
        x = seg.offset * scale
        if seg.wait > 0:
            w = seg.wait * scale
            parts.append(f'<rect class="{WAIT_CLASS}" x="{x:.2f}{rect_tail}{w:.2f}"/>')
            x += w
        if seg.run > 0:
            cls = STATUS_CLASSES.get(s.status, RUNNING_CLASS)
            parts.append(f'<rect class="{cls}" x="{x:.2f}{rect_tail}{seg.run * scale:.2f}"/>')
        parts.append("</g>")
    axis_y = bar + 2
    marks = [f"M0 {axis_y}H{width}"]
    if total > 0:
        step = _tick_step(total, ticks)
        t = 0.0
        while t <= total + 1e-9:
            x = t * scale
            anchor = "start" if t == 0 else "end" if x > width - 12 else "middle"
            marks.append(f"M{x:.1f} {axis_y}v3")
            parts.append(
                f'<text class="ax" x="{x:.1f}" y="{height - 1}" text-anchor="{anchor}">'
                f"{_axis_label(round(t, 6))}</text>"
            )
            t += step
    parts.append(f'<path class="ax" d="{"".join(marks)}"/></svg>')
    return "".join(parts)
