"""The daemon: settings in, every room wired together, run until cancelled."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from monitor import __version__
from monitor.app.auth import admin_token, auth_from_settings
from monitor.app.cluster import Cluster
from monitor.app.discovery import run_discovery
from monitor.app.traces import trace_exporter
from monitor.cluster import ClusterGate
from monitor.cluster.url import mask_redis_url
from monitor.codearts.auth import Auth
from monitor.codearts.auth.health import AuthHealth
from monitor.codearts.client import CodeArtsClient
from monitor.codearts.jobs import record_id_of_build
from monitor.codearts.ratelimit import TokenBucket
from monitor.domain import RecordSnapshot
from monitor.logging import get_logger, secret_filter
from monitor.metrics.aggregates import MonitorMetrics
from monitor.metrics.renderer import RecordCollector
from monitor.server.admin import PREFIX as ADMIN_PREFIX
from monitor.server.admin import LookupUnavailable, admin_app
from monitor.server.admin.access import Access
from monitor.server.http import Health, build_app, start_site
from monitor.server.status import (
    StatusPage,
    TransitionHistory,
    add_status_routes,
    admin_read_guard,
    discovery_rows,
)
from monitor.settings import Settings
from monitor.store import StateStore, store_for
from monitor.traces.config import shown_url
from monitor.tracking.discovery import Discovery
from monitor.tracking.history import Housekeeper
from monitor.tracking.labeler import RecordLabeler
from monitor.tracking.projects import ProjectDiscovery
from monitor.tracking.scheduler import Scheduler
from monitor.tracking.sources import WatchlistFile
from monitor.tracking.watchlist import Watchlist


class Daemon:
    """One monitor process. `run()` serves HTTP and polls until cancelled."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: StateStore | None = None,
        auth: Auth | None = None,
        gate: TokenBucket | ClusterGate | None = None,
        serve_http: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.metrics = MonitorMetrics()
        secret_filter.add(settings.secret_values())
        # With MONITOR_REDIS_URL, Redis is the store, the coordinator and the rate gate.
        self.cluster = (
            Cluster(settings, self.metrics, secret_filter.add) if settings.redis_url else None
        )
        if store is None:
            store = self.cluster.store if self.cluster else store_for(settings.state_path)
        self.store: StateStore = store
        if gate is None:
            gate = self.cluster.gate if self.cluster else None
        self.gate: TokenBucket | ClusterGate = (
            gate if gate is not None else TokenBucket(settings.rate_limit, settings.rate_burst)
        )
        self.metrics.watch_gate(self.gate)
        self.auth = auth if auth is not None else auth_from_settings(settings, secret_filter.add)
        secret_filter.add(self.auth.secrets())
        self.auth_health = AuthHealth(self.metrics, settings.auth_mode or "custom")
        self.watchlist = Watchlist(
            self.store,
            terminal_statuses=settings.terminal_statuses,
            refusal_confirmations=settings.not_found_confirmations,
            retention=settings.retention,
            forget_after=settings.forget_after,
            clock=clock,
        )
        self.watchlist.on_event(self.metrics.on_watchlist_event)
        self.metrics.watch_jobs(settings.max_jobs, self._labels_of)
        self.traces = trace_exporter(
            settings, self.watchlist, self.store, self.metrics, self.cluster, clock
        )
        self.metrics.watch_record_states(
            self.cluster.counts if self.cluster else self.watchlist.counts
        )
        self.collector = RecordCollector(
            self.watchlist, exported=self.cluster.exported if self.cluster else None
        )
        self.watchlist.on_removed(self.collector.forget)
        self.housekeeper = Housekeeper(self.watchlist, self.store)
        self.metrics.watch_history(lambda: len(self.watchlist.tombstones), self.store.size_bytes)
        self.scheduler = Scheduler(
            self.watchlist,
            self._poll,
            interval=settings.poll_interval,
            max_concurrency=settings.max_concurrency,
            max_watch=settings.max_watch,
            backoff_max=settings.backoff_max,
            stall_timeout=settings.stall_timeout,
            held_until=lambda: self.gate.paused_until,
            wall=clock,
            may_poll=self.cluster.coordinator.owns if self.cluster else None,
        )
        self.watchlist.on_added(self.scheduler.on_added)
        readiness = [self._readiness, self.auth_health.problem]
        if self.cluster is not None:
            self.cluster.bind(self.watchlist, self.scheduler, self._sync_sources)
            readiness.append(self.cluster.problem)
        self.health = Health(liveness=[self._liveness], readiness=readiness)
        self.app = build_app(self.collector, self.metrics.registry, self.health)
        token = admin_token(settings, secret_filter.add)
        self.app.add_subapp(
            ADMIN_PREFIX,
            admin_app(
                self.watchlist,
                token=token,
                read_protected=settings.admin_read_protected,
                terminal_statuses=settings.terminal_statuses,
                resolver=self._resolve_build,
            ),
        )
        self.discovery: Discovery | None = None  # made in run(): it needs the client
        self.project_discovery: ProjectDiscovery | None = None
        self.labeler: RecordLabeler | None = None
        # The status page: its own bounded memory of transitions and last polls.
        self.history = TransitionHistory(clock=clock)
        self.watchlist.on_event(self.history.on_event)
        self.watchlist.on_removed(self.history.forget)
        self._wall = clock  # when discovery rounds end, as the status page reads them
        self.status_page = StatusPage(
            self.watchlist,
            self.history,
            version=__version__,
            auth_mode=settings.auth_mode or "custom",
            budget=self.gate,
            retention=settings.retention,
            rows=settings.status_page_rows,
            refresh=settings.status_page_refresh,
            refusal_confirmations=settings.not_found_confirmations,
            discovery=lambda: discovery_rows(self.discovery, self.project_discovery),
            # The admin API's own check: one token comparison, one refusal log line.
            read_guard=admin_read_guard(
                Access(token, read_protected=settings.admin_read_protected).may_read
            ),
            clock=clock,
        )
        add_status_routes(self.app, self.status_page)
        self._watch_file: WatchlistFile | None = None
        self._serve_http = serve_http
        self._client: CodeArtsClient | None = None
        self._client_open = False  # the admin API looks builds up only while it is
        self.port: int | None = None
        self._stop_requested = False
        self._stop_event: anyio.Event | None = None
        self._log = get_logger("monitor.app")

    @property
    def stopping(self) -> bool:
        """True once `stop()` was called."""
        return self._stop_requested

    def stop(self) -> None:
        """Shut down gracefully: no new polls, running ones get MONITOR_SHUTDOWN_GRACE."""
        self._stop_requested = True
        if self._stop_event is not None:
            self._stop_event.set()

    def _liveness(self) -> str | None:
        if self.scheduler.stalled:
            return "scheduler has made no progress for the stall timeout"
        return None

    def _readiness(self) -> str | None:
        if self._stop_requested:
            return "shutting down"
        return None if self.scheduler.ready else "first poll round not finished"

    def _labels_of(self, record_id: str) -> dict[str, str] | None:
        rec = self.watchlist.records.get(record_id)
        return rec.labels if rec is not None else None

    async def _poll(self, record_id: str) -> RecordSnapshot:
        assert self._client is not None
        return await self._client.full_stages(record_id)

    async def _resolve_build(self, job_id: str, build_number: int) -> str:
        if self._client is None or not self._client_open:
            raise LookupUnavailable("its API client is not running")
        return await record_id_of_build(self._client, job_id, build_number)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        s = self.settings
        self._client = CodeArtsClient(
            s.endpoint_url,
            self.auth,
            timeout=s.request_timeout,
            max_connections=s.max_concurrency,
            observer=self.metrics,
            gate=self.gate,
            user_agent=f"codearts-stage-monitor/{__version__}",
            auth_observer=self.auth_health,
        )
        self._client_open = True
        runner = None
        self._stop_event = anyio.Event()
        if self._stop_requested:
            self._stop_event.set()
        if s.projects:
            self.project_discovery = ProjectDiscovery(
                self._client,
                self.watchlist,
                self.metrics,
                s.projects,
                interval=s.discovery_interval,
                refresh_interval=s.job_refresh_interval,
                terminal_statuses=s.terminal_statuses,
                include=s.job_include,
                exclude=s.job_exclude,
                wall=self._wall,
            )
        found = self.project_discovery
        self.labeler = RecordLabeler(
            self._client,
            self.watchlist,
            self.metrics,
            job_of_build_project=found.job_of_build_project if found else lambda _: None,
        )
        self.watchlist.on_added(self.labeler.on_added)
        try:
            await self.watchlist.restore()
            if self.cluster is not None:
                await self.cluster.coordinator.round()  # know what is ours before polling
            if self.traces is not None:  # before reconcile may forget a record still owed
                await self.traces.resume()
            # Retire what ended while down: after traces took their due, before sources run.
            await self.housekeeper.run_once()
            watch_file = None
            if s.watchlist_file is not None:
                watch_file = self._watch_file = WatchlistFile(
                    s.watchlist_file, self.watchlist, s.watchlist_reload_interval
                )
            # A record taken out of MONITOR_RECORDS while the daemon was down is forgotten.
            await self._sync_sources()
            if s.jobs:
                self.discovery = Discovery(
                    self._client,
                    self.watchlist,
                    self.metrics,
                    s.jobs,
                    interval=s.discovery_interval,
                    terminal_statuses=s.terminal_statuses,
                    wall=self._wall,
                )
            if self._serve_http:
                runner, self.port = await start_site(self.app, s.host, s.port)
            self._log.info(
                "daemon_started",
                version=__version__,
                endpoint=s.endpoint_url,
                auth_mode=s.auth_mode,
                port=self.port,
                records=len(self.watchlist.records),
                jobs=len(s.jobs),
                projects=len(s.projects),
                traces=shown_url(self.traces.url) if self.traces is not None else None,
                poll_interval=s.poll_interval,
                rate_limit=s.rate_limit,
                **self._store_fields(),
            )
            async with anyio.create_task_group() as tg:
                if self.traces is not None:
                    await tg.start(self.traces.run)
                if self.cluster is not None:
                    await tg.start(self.cluster.coordinator.run)
                    await tg.start(self.cluster.gate.run)
                await tg.start(self.scheduler.run)
                tg.start_soon(self.housekeeper.run)
                tg.start_soon(self._client.keep_auth_fresh)
                if watch_file is not None:
                    tg.start_soon(watch_file.run)
                if self.discovery is not None:
                    await tg.start(
                        run_discovery, self.discovery, self.cluster, s.discovery_interval
                    )
                await tg.start(self.labeler.run)
                if self.project_discovery is not None:
                    await tg.start(
                        run_discovery, self.project_discovery, self.cluster, s.discovery_interval
                    )
                task_status.started()
                await self._stop_event.wait()
                await self._drain()
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                self._client_open = False
                if runner is not None:
                    await runner.cleanup()
                await self._client.aclose()
                await self.store.close()
                if self.cluster is not None:
                    await self.cluster.close()
                self._log.info("daemon_stopped")

    def _store_fields(self) -> dict[str, object]:
        s = self.settings
        if self.cluster is None or s.redis_url is None:
            return {"state_path": s.state_path}
        return {
            "redis": mask_redis_url(s.redis_url.get_secret_value()),
            "cluster": s.cluster_name,
            "member": self.cluster.coordinator.member,
            "lease_ttl": s.lease_ttl,
        }

    async def _drain(self) -> None:
        """Let running polls finish within the grace period, then give up on them."""
        grace = self.settings.shutdown_grace
        self._log.info("shutdown_started", in_flight=self.scheduler.in_flight, grace=grace)
        self.scheduler.stop()
        with anyio.move_on_after(grace):
            await self.scheduler.wait_finished()
            if self.traces is not None:  # what is left after the grace waits in the outbox
                await self.traces.flushed()
        if self.scheduler.in_flight:
            self._log.warning("shutdown_grace_expired", cancelled_polls=self.scheduler.in_flight)
        if self.cluster is not None:
            with anyio.move_on_after(max(grace, 1.0)):
                await self.cluster.coordinator.leave()  # hand over now, not after the TTL

    async def _sync_sources(self) -> None:
        """Make the watchlist hold what MONITOR_RECORDS and the watchlist file say now.

        At start-up, and after Redis lost its data (discovery adds what it finds at its
        next round)."""
        await self.watchlist.reconcile("config", {rid: {} for rid in self.settings.records})
        if self._watch_file is not None:  # unchanged on disk, but the watchlist may not be
            await self._watch_file.sync(force=True)
