"""Helpers for the status page's tests: simulated builds with chosen names, and their truth."""

from __future__ import annotations

import dataclasses
from typing import Any

from monitor.simulator import Simulator
from monitor.simulator.scenario import RecordPlan


def with_display_name(sim: Simulator, plan: RecordPlan, seq: int, name: str) -> RecordPlan:
    """The same build with stage `seq` renamed (replacing it in the simulator)."""
    stages = tuple(
        dataclasses.replace(st, display_name=name) if st.sequence == seq else st
        for st in plan.stages
    )
    return sim.add_plan(dataclasses.replace(plan, stages=stages))


def truth_stages(sim: Simulator, record_id: str) -> list[dict[str, Any]]:
    """The stages the simulator answers for a record right now, in sequence order."""
    stages = sim.truth(record_id)["result"]["build_stages"].values()
    return sorted(stages, key=lambda s: s["sequence"])
