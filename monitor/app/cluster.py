"""The cluster wiring: Redis as the state store, the coordinator and the rate gate.

Built only when MONITOR_REDIS_URL is set. The coordinator decides who owns what;
this module connects its hooks to the watchlist (adopt what other replicas
added, load a record's latest state before polling it, write back after Redis
lost its data) and gives the rest of the daemon the predicates it filters by.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.credentials import CredentialProvider

from monitor.cluster import ClusterGate, ClusterUnavailable, Coordinator
from monitor.codearts.errors import TransportError
from monitor.domain import RecordState
from monitor.files import FileSecret
from monitor.logging import get_logger
from monitor.metrics.aggregates import MonitorMetrics
from monitor.settings import Settings
from monitor.store import StoredRecord, StoreError
from monitor.store.redis import RedisStore
from monitor.tracking.scheduler import Scheduler
from monitor.tracking.watchlist import WatchedRecord, Watchlist

# Rendezvous hashing gives this name to one member: the one that deletes forgotten
# tombstones from Redis (each replica retires the records assigned to it).
SWEEPER = "history-sweeper"
SOCKET_TIMEOUT = 2.0  # seconds: a Redis that does not answer is a Redis that is down


class RedisUnavailable(TransportError):
    """A poll could not start: the cluster's rate gate (in Redis) did not answer."""

    outcome = "redis_unavailable"


class _PasswordFile(CredentialProvider):
    """The Redis password from a mounted Secret, read again for each new connection."""

    def __init__(self, username: str | None, secret: Callable[[], str]) -> None:
        self._username = username
        self._secret = secret

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        password = self._secret()
        return (self._username, password) if self._username else (password,)

    async def get_credentials_async(self) -> tuple[str] | tuple[str, str]:
        return self.get_credentials()


def redis_client(settings: Settings, register_secret: Callable[[Iterable[str]], None]) -> Redis:
    """A Redis client for MONITOR_REDIS_URL, with the password from the file if given."""
    assert settings.redis_url is not None
    url = settings.redis_url.get_secret_value()
    options: dict[str, object] = {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": SOCKET_TIMEOUT,
        "health_check_interval": 10,
    }
    if settings.redis_password_file is not None:
        user = urlsplit(url).username
        secret = FileSecret(Path(settings.redis_password_file), register_secret)
        options["credential_provider"] = _PasswordFile(unquote(user) if user else None, secret)
    return Redis.from_url(url, **options)  # type: ignore[arg-type]


class Cluster:
    """Every part of the daemon that only exists with Redis."""

    def __init__(
        self,
        settings: Settings,
        metrics: MonitorMetrics,
        register_secret: Callable[[Iterable[str]], None],
    ) -> None:
        self.redis = redis_client(settings, register_secret)
        self.metrics = metrics
        prefix = settings.cluster_name
        self._records: Mapping[str, WatchedRecord] = {}
        self.coordinator = Coordinator(
            self.redis,
            prefix=prefix,
            lease_ttl=settings.lease_ttl,
            tick=min(settings.lease_ttl / 4, settings.poll_interval / 2),
            wanted=self._active_ids,
            observer=metrics,
            lead=bool(settings.jobs or settings.projects),
        )
        self.store = RedisStore(
            self.redis,
            prefix,
            member=self.coordinator.member,
            fence=self.coordinator.fence,
            lease_key=self.coordinator.lease_key,
            # A claim outlives every poll of its record: it is deleted when the record
            # retires, and expires at the horizon after which the id may live again.
            claim_ttl=settings.forget_after,
            observer=metrics,
        )
        self.gate = ClusterGate(
            self.redis,
            f"{prefix}:ratelimit",
            settings.rate_limit,
            settings.rate_burst,
            observer=metrics,
            unavailable=RedisUnavailable,
        )
        self._watchlist: Watchlist | None = None
        self._scheduler: Scheduler | None = None
        self._rebuild: Callable[[], Awaitable[None]] | None = None
        self._log = get_logger("monitor.cluster").bind(member=self.coordinator.member)
        metrics.watch_cluster(
            lambda: len(self.coordinator.members),
            lambda: len(self.coordinator.leases) if self.coordinator.healthy else 0,
        )

    def bind(
        self,
        watchlist: Watchlist,
        scheduler: Scheduler,
        rebuild: Callable[[], Awaitable[None]],
    ) -> None:
        """Connect the coordinator's hooks; `rebuild` re-adds config, file and discovery."""
        self._watchlist = watchlist
        self._records = watchlist.records
        self._scheduler = scheduler
        self._rebuild = rebuild
        self.coordinator.hooks = self
        watchlist.share_history(self.coordinator.assigned, self._sweeps)

    def _sweeps(self) -> bool:
        return self.coordinator.healthy and self.coordinator.assigned(SWEEPER)

    def _active_ids(self) -> list[str]:
        return [rid for rid, r in self._records.items() if r.state is RecordState.ACTIVE]

    # --- what the daemon filters by ----------------------------------------------------------

    def exported(self, rec: WatchedRecord) -> bool:
        """A record's series come from its lease holder, or (once finished) its assignee."""
        if rec.state is RecordState.ACTIVE:
            return self.coordinator.owns(rec.record_id)
        return self.coordinator.assigned(rec.record_id)

    def counts(self) -> dict[RecordState, int]:
        """Records by state, over the records assigned to this replica: sums to the truth."""
        out = dict.fromkeys(RecordState, 0)
        for rid, rec in self._records.items():
            if self.coordinator.assigned(rid):
                out[rec.state] += 1
        return out

    def problem(self) -> str | None:
        """For /readyz: why this replica cannot prove what it owns."""
        c = self.coordinator
        if c.problem is not None:
            return f"redis: {c.problem}"
        return None if c.healthy else "redis: leases not renewed in time"

    # --- the coordinator's hooks ---------------------------------------------------------------

    async def acquired(self, record_ids: list[str]) -> list[str]:
        assert self._watchlist is not None and self._scheduler is not None
        found = await self._fetch(record_ids)
        now = time.monotonic()  # the scheduler's clock
        accepted = []
        for rid, stored in found.items():
            if stored is None:
                continue  # removed elsewhere (the changes feed says so), or not yet written back
            self._watchlist.refresh(stored)
            if self.coordinator.ticks:  # taken over: poll it now, not at its next turn
                self._scheduler.schedule(rid, now)
            accepted.append(rid)
        if self.coordinator.ticks:
            self.metrics.lease_handovers.inc(len(accepted))
        return accepted

    async def changed(self, version: int) -> None:
        assert self._watchlist is not None
        try:
            now, ids = await self.store.changes_since(self.store.version)
            if ids is None:
                # Both ways: records new to us, and ours that left (removed or retired).
                every = await self.store.ids()
                ids = sorted(every.symmetric_difference(self._watchlist.records))
            found = await self.store.fetch(ids)
            gone = [rid for rid, stored in found.items() if stored is None]
            retired = await self.store.tombstones_of(gone)
        except StoreError as exc:
            raise ClusterUnavailable(str(exc)) from None
        for rid, stored in found.items():
            tombstone = retired.get(rid)
            if tombstone is not None:
                self._watchlist.retired_elsewhere(tombstone)
            elif stored is None:
                self._watchlist.forget(rid)
            else:
                self._watchlist.adopt(stored)
        self.store.version = now

    async def reset(self) -> None:
        assert self._watchlist is not None and self._rebuild is not None
        self.metrics.redis_resets.inc()
        self.store.forget_written()
        self.store.version = 0
        written = 0
        try:
            # Each replica writes back the records it was assigned, with what it counted;
            # the watchlist is then rebuilt from config, file and discovery as at start-up.
            for rid, rec in list(self._watchlist.records.items()):
                if self.coordinator.assigned(rid):
                    await self.store.save(rec.stored())
                    written += 1
            await self._rebuild()
        except StoreError as exc:
            raise ClusterUnavailable(str(exc)) from None
        self._log.warning("redis_rebuilt", records_written_back=written)

    async def _fetch(self, record_ids: list[str]) -> dict[str, StoredRecord | None]:
        try:
            return await self.store.fetch(record_ids)
        except StoreError as exc:
            raise ClusterUnavailable(str(exc)) from None

    async def close(self) -> None:
        await self.redis.aclose()
