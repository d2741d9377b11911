"""Metrics that accumulate in the process: aggregates of finished stages and the monitor's own.

Per-record series are not here: they are rendered from snapshots at scrape
time (see renderer.py), so nothing has to be deleted when a record retires.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.codearts.errors import AUTH_FAILURE_REASONS
from monitor.domain import RecordState, StageSnapshot, ms_to_seconds
from monitor.metrics.jobs import JobNames
from monitor.metrics.retired import HistoryGauges
from monitor.tracking.tracker import PollDone, RecordCompleted, StageFinished, Transition

# `_created` series double the output and no dashboard here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Build stages take seconds to hours.
STAGE_DURATION_BUCKETS = (
    1,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    14400,
    28800,
)
STAGE_PENDING_BUCKETS = (0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
# Whole builds: ten seconds to twelve hours.
RECORD_DURATION_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 43200)
API_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
REDIS_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


class _RecordsByState(Collector):
    def __init__(self, counts: Callable[[], Mapping[RecordState, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        fam = GaugeMetricFamily(
            "stage_monitor_records",
            "Watched records whose series are exported (active, or finished within "
            "MONITOR_RETENTION), by state.",
            labels=["state"],
        )
        counts = self._counts()
        for state in RecordState:
            fam.add_metric([state.value], counts.get(state, 0))
        yield fam


class _Gate(Collector):
    def __init__(self, gate: GateState) -> None:
        self._gate = gate

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "stage_monitor_rate_limit_requests_per_second",
            "The request rate in force: MONITOR_RATE_LIMIT, or less while recovering from "
            "throttling.",
            value=self._gate.current_rate(),
        )
        yield CounterMetricFamily(
            "stage_monitor_throttle_pauses",
            "Times the API said too many requests and every request was paused.",
            value=self._gate.pauses,
        )


class GateState(Protocol):
    """What the metrics read from the process-wide rate gate."""

    pauses: int

    def current_rate(self) -> float: ...


class MonitorMetrics:
    """The process-lifetime metrics, in their own registry (never the global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.stages_finished = Counter(
            "codearts_build_stages_finished",
            "Stages that reached a terminal status, counted once per stage.",
            ["job_name", "display_name", "status"],
            registry=r,
        )
        self.finished_duration = Histogram(
            "codearts_build_stage_finished_duration_seconds",
            "Duration of finished stages, as reported by the API.",
            ["job_name", "display_name", "status"],
            buckets=STAGE_DURATION_BUCKETS,
            registry=r,
        )
        self.finished_pending = Histogram(
            "codearts_build_stage_finished_pending_seconds",
            "Time finished stages waited before running, as reported by the API.",
            ["job_name", "display_name"],
            buckets=STAGE_PENDING_BUCKETS,
            registry=r,
        )
        self.transitions = Counter(
            "codearts_build_stage_transitions",
            "Stage status changes seen; from_status is empty when a stage is first seen.",
            ["from_status", "to_status"],
            registry=r,
        )
        self.polls = Counter(
            "stage_monitor_polls", "Polls of a record, by outcome.", ["outcome"], registry=r
        )
        self.api_requests = Counter(
            "stage_monitor_api_requests",
            "HTTP requests to the API, by HTTP status code or transport failure.",
            ["code"],
            registry=r,
        )
        self.api_latency = Histogram(
            "stage_monitor_api_request_duration_seconds",
            "Time from sending a request to the API to reading its whole answer.",
            buckets=API_LATENCY_BUCKETS,
            registry=r,
        )
        self.discovery_runs = Counter(
            "stage_monitor_discovery_runs",
            "Discovery calls by outcome: one job's builds listed, a project's job list read, or a "
            "brief-records batch asked.",
            ["outcome"],
            registry=r,
        )
        self.discovered_records = Counter(
            "stage_monitor_discovered_records",
            "Builds that job discovery added to the watchlist.",
            registry=r,
        )
        self.auth_failures = Counter(
            "stage_monitor_auth_failures",
            "API calls that failed authentication (refused, or held back while a refusal "
            "backs off), by reason.",
            ["reason"],
            registry=r,
        )
        self.build_info = Gauge(
            "stage_monitor_build_info",
            "Always 1; the version label says which build runs.",
            ["version"],
            registry=r,
        )
        self.build_info.labels(version=__version__).set(1)
        # Outcomes a dashboard should see as zero before the first one happens.
        for outcome in ("success",):
            self.polls.labels(outcome=outcome)
            self.discovery_runs.labels(outcome=outcome)
        for reason in AUTH_FAILURE_REASONS:
            self.auth_failures.labels(reason=reason)
        # Trace export (OTLP): builds by what became of their trace, and the queue.
        self.traces_exported = Counter(
            "stage_monitor_traces_exported",
            "Completed builds' traces by outcome: delivered to the collector, retried (one "
            "per build per failed attempt) or dropped (given up, refused or the queue full).",
            ["outcome"],
            registry=r,
        )
        for outcome in ("delivered", "retried", "dropped"):
            self.traces_exported.labels(outcome=outcome)
        self.trace_queue_spans = Gauge(
            "stage_monitor_trace_queue_spans",
            "Spans waiting to be delivered to the OTLP collector.",
            registry=r,
        )

        # --- projects: discovery of whole projects, history per job ------------------------
        self.discovery_requests = Counter(
            "stage_monitor_discovery_requests",
            "Requests discovery sent to the API (they share the one rate budget), by API.",
            ["api"],
            registry=r,
        )
        self.discovery_problems = Counter(
            "stage_monitor_discovery_problems",
            "Bad input discovery met (a refused project, a malformed page, a job left out of "
            "an answer, ...), counted once each time it starts.",
            ["problem"],
            registry=r,
        )
        self.discovery_fallbacks = Counter(
            "stage_monitor_discovery_fallbacks",
            "Jobs listed one by one (ListRecords) because the cheap round could not be used.",
            ["reason"],
            registry=r,
        )
        self.discovery_jobs = Gauge(
            "stage_monitor_discovery_jobs",
            "Jobs of MONITOR_PROJECTS at the last round: watched, excluded by the patterns, "
            "or disabled.",
            ["state"],
            registry=r,
        )
        self.records_finished = Counter(
            "codearts_build_records_finished",
            "Build records that completed, counted once per record, by job and result.",
            ["job_name", "result"],
            registry=r,
        )
        self.record_duration = Histogram(
            "codearts_build_record_duration_seconds",
            "Completed builds from their first stage's start to their last stage's finish.",
            ["job_name", "result"],
            buckets=RECORD_DURATION_BUCKETS,
            registry=r,
        )
        self.jobs_folded = Counter(
            "stage_monitor_jobs_folded",
            'Jobs whose builds are counted under job_name="_other" (MONITOR_MAX_JOBS reached).',
            registry=r,
        )
        self.job_names = JobNames(on_folded=self.jobs_folded.inc)
        for api in ("job_list", "brief_records", "job_info", "records", "record_info"):
            self.discovery_requests.labels(api=api)
        for state in ("watched", "excluded", "disabled"):
            self.discovery_jobs.labels(state=state)
        # --- more than one replica (Redis) ----------------------------------------------
        self.redis_errors = Counter(
            "stage_monitor_redis_errors",
            "Redis commands that failed (unreachable, timed out, refused), by step.",
            ["op"],
            registry=r,
        )
        self.redis_latency = Histogram(
            "stage_monitor_redis_request_duration_seconds",
            "Time from sending a command (or script, or pipeline) to Redis to its answer.",
            buckets=REDIS_LATENCY_BUCKETS,
            registry=r,
        )
        self.redis_resets = Counter(
            "stage_monitor_redis_resets",
            "Times this replica found Redis empty (it lost its data) and rebuilt the "
            "shared watchlist.",
            registry=r,
        )
        self.lease_handovers = Counter(
            "stage_monitor_lease_handovers",
            "Record leases this replica took after its first round: records that moved here "
            "from a replica that left, died or gave them away.",
            registry=r,
        )
        self.redis_commands = 0  # every command sent, for the benchmark's commands per poll

    def watch_gate(self, gate: GateState) -> None:
        """Export the rate gate's current rate and pauses, read at scrape time."""
        self.registry.register(_Gate(gate))

    def watch_history(self, retired: Callable[[], int], state_bytes: Callable[[], int]) -> None:
        """Export the number of tombstones and the state file's size, read at scrape time."""
        self.registry.register(HistoryGauges(retired, state_bytes))

    def watch_record_states(self, counts: Callable[[], Mapping[RecordState, int]]) -> None:
        """Export `stage_monitor_records{state}` from a function called at scrape time."""
        self.registry.register(_RecordsByState(counts))

    # --- hooks called by the client and the watchlist ------------------------------------

    def on_watchlist_event(
        self, event: Transition | StageFinished | RecordCompleted | PollDone
    ) -> None:
        """The watchlist's listener: count what its events say."""
        if isinstance(event, Transition):
            self.count_transition(event)
        elif isinstance(event, StageFinished):
            self.count_finished(event.stage, self.job_names.of_record(event.record_id))
        elif isinstance(event, RecordCompleted):
            self.count_completed(event)
        elif isinstance(event, PollDone):
            self.count_poll(event.outcome)

    def observe_request(self, code: str, seconds: float) -> None:
        self.api_requests.labels(code=code).inc()
        self.api_latency.observe(seconds)

    def count_auth_failure(self, reason: str) -> None:
        self.auth_failures.labels(
            reason=reason if reason in AUTH_FAILURE_REASONS else "rejected"
        ).inc()

    def count_poll(self, outcome: str) -> None:
        self.polls.labels(outcome=outcome).inc()

    def count_transition(self, t: Transition) -> None:
        self.transitions.labels(from_status=t.from_status or "", to_status=t.to_status).inc()

    def count_finished(self, stage: StageSnapshot, job_name: str = "") -> None:
        labels = {"job_name": job_name, "display_name": stage.display_name}
        self.stages_finished.labels(**labels, status=stage.status).inc()
        duration = ms_to_seconds(stage.duration_ms)
        if duration is not None:
            self.finished_duration.labels(**labels, status=stage.status).observe(duration)
        pending = ms_to_seconds(stage.pending_duration_ms)
        if pending is not None:
            self.finished_pending.labels(**labels).observe(pending)

    def count_completed(self, event: RecordCompleted) -> None:
        """A record completed: the watchlist emits this once per record, ever."""
        job_name = self.job_names.of_record(event.record_id)
        self.records_finished.labels(job_name=job_name, result=event.result).inc()
        if event.duration_seconds is not None:
            self.record_duration.labels(job_name=job_name, result=event.result).observe(
                event.duration_seconds
            )

    def watch_jobs(
        self, max_jobs: int, labels_of: Callable[[str], Mapping[str, str] | None]
    ) -> None:
        """Where `job_name` comes from (a record's labels) and how many values it may take."""
        self.job_names = JobNames(max_jobs, labels_of, self.jobs_folded.inc)

    def count_discovery_request(self, api: str) -> None:
        self.discovery_requests.labels(api=api).inc()

    def count_discovery_problem(self, problem: str) -> None:
        self.discovery_problems.labels(problem=problem).inc()

    def count_discovery_fallback(self, reason: str) -> None:
        self.discovery_fallbacks.labels(reason=reason).inc()

    def set_discovery_jobs(self, counts: dict[str, int]) -> None:
        for state, count in counts.items():
            self.discovery_jobs.labels(state=state).set(count)

    def count_traces(self, outcome: str, builds: int) -> None:
        self.traces_exported.labels(outcome=outcome).inc(builds)

    def set_trace_queue(self, spans: int) -> None:
        self.trace_queue_spans.set(spans)

    def count_discovery_run(self, outcome: str) -> None:
        self.discovery_runs.labels(outcome=outcome).inc()

    def count_discovered(self) -> None:
        self.discovered_records.inc()

    # --- more than one replica (Redis) ---------------------------------------------------

    def observe_redis(self, op: str, seconds: float, ok: bool) -> None:
        self.redis_commands += 1
        self.redis_latency.observe(seconds)
        if not ok:
            self.redis_errors.labels(op=op).inc()

    def watch_cluster(self, members: Callable[[], int], owned: Callable[[], int]) -> None:
        """Export the live members and the records this replica owns, read at scrape time."""
        self.registry.register(_Cluster(members, owned))


class _Cluster(Collector):
    def __init__(self, members: Callable[[], int], owned: Callable[[], int]) -> None:
        self._members = members
        self._owned = owned

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "stage_monitor_cluster_members",
            "Live replicas as this replica last saw them in Redis (1 without Redis).",
            value=self._members(),
        )
        yield GaugeMetricFamily(
            "stage_monitor_owned_records",
            "Active records whose lease this replica holds (all active ones without Redis).",
            value=self._owned(),
        )
