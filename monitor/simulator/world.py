"""The build world: simulated time, jobs, the builds (record plans) and what was answered.

Everything here is a pure function of the plans and the simulated time, so a test
can ask for the truth at the moment the simulator answered and compare it with metrics.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from monitor.simulator.scenario import RecordPlan, full_stages_body, make_plan


class SimClock:
    """Simulated wall-clock time: real time times `speed`, plus manual advances.

    With speed 0 the clock only moves when a test calls `advance`.
    """

    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        self.speed = speed
        self._base = time.time() if start is None else start
        self._mono0 = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        return self._base + (time.monotonic() - self._mono0) * self.speed + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds


@dataclass(slots=True)
class SimJob:
    """A build job: its id (32 characters), name and build project id (a UUID).

    `every` > 0 starts a new build every `every` simulated seconds from `next_at`;
    builds are started lazily, when a request arrives, each at its scheduled time,
    so the answers stay a pure function of the simulated time.
    """

    job_id: str
    job_name: str
    build_project_id: str
    next_build_number: int = 1
    every: float = 0.0
    next_at: float = 0.0
    duration_scale: float = 1.0


class World:
    """Jobs and their builds on one simulated clock."""

    def __init__(self, *, seed: int = 0, clock: SimClock) -> None:
        self.rng = random.Random(seed)
        self.clock = clock
        self.plans: dict[str, RecordPlan] = {}
        self.jobs: dict[str, SimJob] = {}
        self.answered: dict[str, dict[str, Any]] = {}  # last 200 body per record: the truth

    def add_plan(self, plan: RecordPlan) -> RecordPlan:
        self.plans[plan.record_id] = plan
        return plan

    def new_build(
        self,
        *,
        started_ago: float = 0.0,
        duration_scale: float = 1.0,
        fate: str | None = None,
        job_id: str = "",
        build_number: int | None = None,
    ) -> RecordPlan:
        """Start a build `started_ago` simulated seconds before now.

        A build of a job made with `add_job` gets that job's next build number.
        """
        job = self.jobs.get(job_id)
        if build_number is None:
            build_number = job.next_build_number if job is not None else 1
        if job is not None:
            job.next_build_number = max(job.next_build_number, build_number + 1)
        plan = make_plan(
            self.rng,
            self.clock.now() - started_ago,
            job_id=job_id,
            build_number=build_number,
            speed_scale=duration_scale,
            fate=fate,
        )
        return self.add_plan(plan)

    def add_job(
        self,
        job_name: str | None = None,
        *,
        every: float = 0.0,
        first_in: float | None = None,
        duration_scale: float = 1.0,
    ) -> SimJob:
        """A new build job; with `every` > 0 it starts a build every `every` simulated seconds."""
        n = len(self.jobs) + 1
        job = SimJob(
            job_id=uuid.UUID(int=self.rng.getrandbits(128)).hex,
            job_name=job_name or f"sim-job-{n}",
            build_project_id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            every=every,
            next_at=self.clock.now() + (every if first_in is None else first_in),
            duration_scale=duration_scale,
        )
        self.jobs[job.job_id] = job
        return job

    def start_due_builds(self) -> list[RecordPlan]:
        """Start every scheduled build whose time has come, each at its own start time."""
        now = self.clock.now()
        started = []
        for job in self.jobs.values():
            while job.every > 0 and job.next_at <= now:
                ago = now - job.next_at
                job.next_at += job.every
                started.append(
                    self.new_build(
                        started_ago=ago, duration_scale=job.duration_scale, job_id=job.job_id
                    )
                )
        return started

    def builds_of(self, job_id: str) -> list[RecordPlan]:
        """A job's builds, newest first."""
        plans = [p for p in self.plans.values() if p.job_id == job_id]
        plans.sort(key=lambda p: (p.created, p.build_number), reverse=True)
        return plans

    def populate(self, count: int, duration_scale: float = 1.0) -> list[RecordPlan]:
        """`count` builds at every point of their life: some done, some running, some queued."""
        out = []
        for _ in range(count):
            plan = make_plan(self.rng, 0.0, speed_scale=duration_scale)
            span = plan.end_time() - plan.created
            ago = self.rng.uniform(-0.1 * span, 1.2 * span)
            out.append(self.add_plan(_reanchor(plan, self.clock.now() - ago)))
        return out

    def truth(self, record_id: str) -> dict[str, Any]:
        """What the API would answer for this record right now."""
        return full_stages_body(self.plans[record_id], self.clock.now())


def _reanchor(plan: RecordPlan, created: float) -> RecordPlan:
    fields = {f: getattr(plan, f) for f in RecordPlan.__slots__}
    shift = created - plan.created
    fields["created"] = created
    if plan.stop_at is not None:
        fields["stop_at"] = plan.stop_at + shift
    return RecordPlan(**fields)
