"""Running a discovery: alone, or with replicas only on the one holding the leader lease."""

from __future__ import annotations

import anyio
from anyio.abc import TaskStatus

from monitor.app.cluster import Cluster
from monitor.tracking.discovery import Discovery
from monitor.tracking.projects import ProjectDiscovery


async def run_discovery(
    discovery: Discovery | ProjectDiscovery,
    cluster: Cluster | None,
    interval: float,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Rounds every `interval`; with replicas, only while this one leads (one lister)."""
    if cluster is None:
        await discovery.run(task_status=task_status)
        return
    task_status.started()
    coordinator = cluster.coordinator
    while True:
        if coordinator.leading:
            await discovery.run_once()
            await anyio.sleep(interval)
        else:
            await anyio.sleep(coordinator.tick)
