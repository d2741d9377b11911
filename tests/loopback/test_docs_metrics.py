"""docs/metrics.md describes every family a live daemon exports, with its type."""

from __future__ import annotations

import re
from pathlib import Path

from monitor.app import Daemon
from monitor.domain import RecordState
from tests.support.loopback import SimServer, fetch, make_settings, running, wait_until

METRICS_MD = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def _documented() -> dict[str, str]:
    """Family name -> type, from the rows `| `name` | type | ... |` of docs/metrics.md."""
    text = METRICS_MD.read_text(encoding="utf-8")
    rows = re.finditer(r"^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*([a-z]+)\s*\|", text, re.MULTILINE)
    return {m.group(1): m.group(2) for m in rows}


def _exposed_name(name: str, kind: str) -> str:
    # prometheus_client keeps a counter's name without `_total`; /metrics shows it with.
    return f"{name}_total" if kind == "counter" and not name.endswith("_total") else name


async def test_every_exported_family_is_in_metrics_md_with_its_type(sim: SimServer) -> None:
    s = sim.sim
    job = s.add_job("docs-job")
    running_build = s.new_build(job_id=job.job_id, started_ago=5)
    finished = s.new_build(started_ago=100_000, fate="FAILURE")
    daemon = Daemon(
        make_settings(sim.url, [finished.record_id], jobs=[job.job_id], discovery_interval=0.05)
    )
    async with running(daemon):
        # A completed record has every per-record family and fills the finished-stage
        # histograms; a discovered build fills the discovery families.
        await wait_until(
            daemon,
            lambda: (
                (rec := daemon.watchlist.records.get(finished.record_id)) is not None
                and rec.state is RecordState.COMPLETE
                and running_build.record_id in daemon.watchlist.records
                and daemon.watchlist.records[running_build.record_id].snapshot is not None
            ),
        )
        status, _, text = await fetch(daemon, "/metrics")
        registry = list(daemon.metrics.registry.collect())
    assert status == 200
    exported = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    for family in registry:
        exported.setdefault(_exposed_name(family.name, family.type), family.type)

    documented = _documented()
    missing = sorted(f"{n} ({kind})" for n, kind in exported.items() if n not in documented)
    assert missing == [], "docs/metrics.md has no row `| `name` | type | ...` for: " + (
        ", ".join(missing)
    )
    wrong = sorted(
        f"{name}: docs say {documented[name]}, /metrics says {kind}"
        for name, kind in exported.items()
        if documented[name] != kind
    )
    assert wrong == [], "docs/metrics.md gives the wrong type: " + "; ".join(wrong)
