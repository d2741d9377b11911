"""Simulated builds: a plan per record, and what the API says about it at any moment.

The answer is a pure function of (plan, simulated time), so a test can ask the
simulator for the truth at the moment it answered and compare it with metrics.

Status vocabulary. Documented (reference, "Status vocabulary"): SUCCESS = 5 and
ABORTED = 8 with codes; FAILURE, SCHEDULE_FAILURE, TIMEOUT, UNKNOWN without
codes. Everything marked INVENTED below is the simulator's own guess: the real
running-side strings and the missing codes are not documented anywhere.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

DOCUMENTED_CODES = {"SUCCESS": 5, "ABORTED": 8}
INVENTED_CODES = {
    "INIT": 0,  # INVENTED: a stage not reached yet
    "PENDING": 1,  # INVENTED: queued, waiting for an agent
    "RUNNING": 2,  # INVENTED
    "FAILURE": 6,  # status documented, code INVENTED
    "TIMEOUT": 7,  # status documented, code INVENTED
    "SCHEDULE_FAILURE": 9,  # status documented, code INVENTED
    "UNKNOWN": 10,  # status documented, code INVENTED
}
STATUS_CODES = {**INVENTED_CODES, **DOCUMENTED_CODES}

STAGE_NAMES = (
    "Code CheckOut",
    "Cache Check",
    "Maven",
    "npm build",
    "Unit Tests",
    "Docker Build",
    "Upload to Release Repo",
    "SonarQube Scan",
    "Go Build",
    "Shell Command",
)

SHAPE_UTC_MILLIS = "utc_millis"  # 2024-09-24T03:18:49.000+00:00
SHAPE_OFFSET_0800 = "offset_0800"  # 2024-08-12T02:31:01+0800
_CST = timezone(timedelta(hours=8))


@dataclass(frozen=True, slots=True)
class StagePlan:
    key: str
    display_name: str
    sequence: int
    pending: float  # seconds waiting for an agent
    run: float  # seconds running
    outcome: str  # terminal status if it gets to run to its end
    node_id: int | None


@dataclass(frozen=True, slots=True)
class RecordPlan:
    """One build: when it starts, its stages, and how it ends.

    `stop_at`, when set, is the simulated time at which the build is cut short
    (aborted by a user, or given up by the scheduler): the stage in progress
    then takes `stop_status`, every later stage becomes ABORTED with zero durations.
    """

    record_id: str
    job_id: str
    build_number: int
    created: float  # unix seconds (simulated clock)
    stages: tuple[StagePlan, ...]
    shape: str
    execution_id: str
    stop_at: float | None = None
    stop_status: str = "ABORTED"

    def end_time(self) -> float:
        """When the last stage reaches a terminal status."""
        t = self.created
        for st in self.stages:
            t += st.pending + st.run
            if st.outcome != "SUCCESS":
                break
        return min(t, self.stop_at) if self.stop_at is not None else t


def format_time(ts: float, shape: str) -> str:
    """A timestamp as the API writes it, in one of its two shapes."""
    if shape == SHAPE_OFFSET_0800:
        return datetime.fromtimestamp(ts, _CST).strftime("%Y-%m-%dT%H:%M:%S%z")
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{dt.microsecond // 1000:03d}+00:00"


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_plan(
    rng: random.Random,
    created: float,
    *,
    job_id: str = "",
    build_number: int = 1,
    speed_scale: float = 1.0,
    fate: str | None = None,
) -> RecordPlan:
    """A realistic build: initial, 2-6 stageN, final; most succeed, some fail or abort.

    `speed_scale` shrinks every duration (the demo wants builds of minutes, not hours).
    """
    n = rng.randint(2, 6)
    names = rng.sample(STAGE_NAMES, n)
    if fate is None:
        fate = rng.choices(
            ["SUCCESS", "FAILURE", "ABORTED", "SCHEDULE_FAILURE", "TIMEOUT"],
            weights=[70, 15, 8, 4, 3],
        )[0]
    stages: list[StagePlan] = []
    specs = [("initial", "initial", rng.uniform(1, 40), rng.uniform(2, 10))]
    specs += [
        (f"stage{i}", names[i - 1], rng.uniform(0, 3), rng.uniform(5, 300)) for i in range(1, n + 1)
    ]
    specs.append(("final", "final", 0.0, rng.uniform(1, 5)))
    fail_at = rng.randint(1, n) if fate in ("FAILURE", "TIMEOUT") else None
    for seq, (key, display, pending, run) in enumerate(specs):
        outcome = "SUCCESS"
        if fate == "SCHEDULE_FAILURE" and seq == 0:
            outcome, pending, run = "SCHEDULE_FAILURE", rng.uniform(60, 300), 0.0
        elif fail_at == seq:
            outcome = fate
        stages.append(
            StagePlan(
                key=key,
                display_name=display,
                sequence=seq,
                pending=pending * speed_scale,
                run=run * speed_scale,
                outcome=outcome,
                node_id=rng.randint(1, 99) if seq == 0 else None,
            )
        )
    plan = RecordPlan(
        record_id=_uuid(rng),
        job_id=job_id or uuid.UUID(int=rng.getrandbits(128)).hex,
        build_number=build_number,
        created=created,
        stages=tuple(stages),
        shape=rng.choice([SHAPE_UTC_MILLIS, SHAPE_OFFSET_0800]),
        execution_id="j_"
        + "".join(rng.choices("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ0123456789", k=8)),
    )
    if fate == "ABORTED":
        span = plan.end_time() - created
        plan = RecordPlan(**{**_fields(plan), "stop_at": created + rng.uniform(0.1, 0.9) * span})
    return plan


def _fields(plan: RecordPlan) -> dict[str, Any]:
    return {f: getattr(plan, f) for f in RecordPlan.__slots__}


def stage_states(plan: RecordPlan, now: float) -> dict[str, dict[str, Any]]:
    """The `build_stages` map the API returns for this plan at simulated time `now`."""
    out: dict[str, dict[str, Any]] = {}
    t = plan.created  # when the current stage is queued
    cut: float | None = None  # once set, every later stage is ABORTED at this time
    fmt = plan.shape
    for st in plan.stages:
        rec: dict[str, Any] = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{plan.record_id}/{st.key}")),
            "status": "INIT",
            "status_code": STATUS_CODES["INIT"],
            "log_status": None,
            "create_time": format_time(plan.created, fmt),
            "schedule_time": None,
            "queued_time": None,
            "start_time": None,
            "finish_time": None,
            "duration": None,
            "build_duration": None,
            "pending_duration": None,
            "build_record_id": plan.record_id,
            "execution_id": plan.execution_id,
            "execution_stage_name": st.key,
            "display_name": st.display_name,
            "node_id": st.node_id,
            "sequence": st.sequence,
        }
        out[st.key] = rec
        if cut is not None:
            if now >= cut:
                _terminal(rec, "ABORTED", cut, cut, cut, 0.0, 0.0, fmt)
            continue
        queued = t
        started = queued + st.pending
        finished = started + st.run
        stop = plan.stop_at
        if stop is not None and stop < finished:
            # Cut short while waiting or running.
            if now >= stop:
                s_start = min(started, stop)
                _terminal(
                    rec,
                    plan.stop_status,
                    queued,
                    s_start,
                    stop,
                    s_start - queued,
                    stop - s_start,
                    fmt,
                )
                cut = stop
                continue
            finished = float("inf")
        if now < queued:
            cut = float("inf")  # later stages are INIT as well
            continue
        rec["schedule_time"] = format_time(queued, fmt)
        rec["queued_time"] = format_time(queued, fmt)
        if now < started:
            rec.update(
                status="PENDING",
                status_code=STATUS_CODES["PENDING"],
                duration=_ms(now - queued),
                build_duration=0,
                pending_duration=_ms(now - queued),
            )
            cut = float("inf")
            continue
        rec["start_time"] = format_time(started, fmt)
        if now < finished:
            rec.update(
                status="RUNNING",
                status_code=STATUS_CODES["RUNNING"],
                duration=_ms(now - queued),
                build_duration=_ms(now - started),
                pending_duration=_ms(st.pending),
            )
            cut = float("inf")
            continue
        _terminal(rec, st.outcome, queued, started, finished, st.pending, st.run, fmt)
        if st.outcome != "SUCCESS":
            cut = finished
        t = finished
    return out


def _terminal(
    rec: dict[str, Any],
    status: str,
    queued: float,
    started: float,
    finished: float,
    pending: float,
    run: float,
    fmt: str,
) -> None:
    rec.update(
        status=status,
        status_code=STATUS_CODES[status],
        schedule_time=format_time(queued, fmt),
        queued_time=format_time(queued, fmt),
        start_time=format_time(started, fmt),
        finish_time=format_time(finished, fmt),
        duration=_ms(pending) + _ms(run),
        build_duration=_ms(run),
        pending_duration=_ms(pending),
    )


def full_stages_body(plan: RecordPlan, now: float) -> dict[str, Any]:
    """The whole 200 answer, shaped like the documented example (with `check_stages`)."""
    return {
        "result": {"build_stages": stage_states(plan, now), "check_stages": None},
        "error": None,
        "status": "success",
    }


TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILURE", "ABORTED", "SCHEDULE_FAILURE", "TIMEOUT"})


def record_status(plan: RecordPlan, now: float) -> str:
    """The build's own status: the first stage that did not succeed decides, else SUCCESS.

    While any stage is not terminal the build is "RUNNING": INVENTED, the
    running-side record statuses are not documented (only SUCCESS and ABORTED are).
    """
    stages = stage_states(plan, now)
    for rec in stages.values():
        if rec["status"] not in TERMINAL_STATUSES:
            return "RUNNING"
    for rec in stages.values():
        if rec["status"] != "SUCCESS":
            return str(rec["status"])
    return "SUCCESS"


def build_record(
    plan: RecordPlan, now: float, *, job_name: str, build_project_id: str
) -> dict[str, Any]:
    """One `BuildRecord` of `GET /v1/record/{build_project_id}/records`, shaped like its example.

    Fields the monitor never reads (branch, repository, parameters, ...) are
    filled with the example's values so the shape stays the documented one.
    """
    status = record_status(plan, now)
    stages = stage_states(plan, now)
    first, last = stages["initial"], list(stages.values())[-1]
    done = status != "RUNNING"
    end = plan.end_time() if done else now
    started = first["start_time"]
    pending_ms = sum(int(s["pending_duration"] or 0) for s in stages.values())
    day = datetime.fromtimestamp(plan.created, _CST).strftime("%Y%m%d")
    return {
        "branch": "master",
        "build_duration": _ms(end - plan.created) - pending_ms if done else 0,
        "build_no": str(plan.build_number),
        "build_record_type": {"record_type": "JOB", "trigger_type": "MANUAL"},
        "build_yml_path": ".cloudbuild/build.yml",
        "build_yml_url": "",
        "create_time": format_time(plan.created, plan.shape),
        "daily_build_no": f"{day}.{plan.build_number}",
        "daily_build_number": f"{day}.{plan.build_number}",
        "dev_cloud_build_type": "branch",
        "display_name": job_name,
        "duration": _ms(end - plan.created) if done else 0,
        "execution_id": plan.execution_id,
        "finish_time": last["finish_time"] if done else None,
        "group_name": "",
        "id": plan.record_id,
        "parameters": [{"name": "codeBranch", "secret": False, "value": "master"}],
        "pending_duration": pending_ms,
        "project_id": build_project_id,
        "queued_time": first["queued_time"],
        "repository": "",
        "revision": "",
        "schedule_time": first["schedule_time"],
        "scm_type": "codehub",
        "scm_web_url": "",
        "start_time": started,
        "status": status,
        "status_code": STATUS_CODES[status],
        "trigger_name": "simulator",
        "trigger_type": "MANUAL",
        "user_id": "ae22fd035f354cfa8d82a3f1c8940446",
    }
