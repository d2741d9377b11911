"""The status page's discovery section: what each discovery that runs watches and how its
last round went, read from the discoveries' own attributes (nothing is counted twice)."""

from __future__ import annotations

from monitor.server.status.page import DiscoveryRow
from monitor.tracking.discovery import Discovery
from monitor.tracking.projects import ProjectDiscovery


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def discovery_rows(jobs: Discovery | None, projects: ProjectDiscovery | None) -> list[DiscoveryRow]:
    """A row per discovery that runs: MONITOR_JOBS, then MONITOR_PROJECTS."""
    rows = []
    if jobs is not None:
        rows.append(
            DiscoveryRow(
                kind="jobs",
                source=f"{_plural(len(jobs.job_ids), 'job')} (MONITOR_JOBS)",
                watched=len(jobs.job_ids),
                excluded=None,
                disabled=None,
                rounds=jobs.rounds_completed,
                last_round_at=jobs.last_round_at,
                last_outcome=jobs.last_outcome,
            )
        )
    if projects is not None:
        counts = projects.job_counts  # None until a job list was read
        rows.append(
            DiscoveryRow(
                kind="projects",
                source=f"{_plural(len(projects.project_ids), 'project')} (MONITOR_PROJECTS)",
                watched=len(projects.jobs) if counts is not None else None,
                excluded=counts["excluded"] if counts is not None else None,
                disabled=counts["disabled"] if counts is not None else None,
                rounds=projects.rounds_completed,
                last_round_at=projects.last_round_at,
                last_outcome=projects.last_outcome,
            )
        )
    return rows
