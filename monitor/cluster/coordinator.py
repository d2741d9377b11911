"""Membership, record ownership and the leader lease, renewed in one loop.

Every `tick` seconds a replica renews its heartbeat and learns the live members
(one script), then renews or takes the leases of the records rendezvous hashing
gives it and releases the ones it gives away (one script each). A lease proves
ownership only until `LEASE_SHARE` of the TTL after the renewal was *sent*: a
replica cut off from Redis stops polling before its leases can expire and be
taken elsewhere. Each lease carries a fencing token; the store refuses a write
whose token is no longer the lease's.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, Protocol

import anyio
from anyio.abc import TaskStatus
from redis.asyncio import Redis
from redis.exceptions import RedisError

from monitor.cluster import scripts
from monitor.logging import get_logger

# Ownership is trusted for this share of the TTL after a renewal was sent; the rest is
# margin for the renewal's own latency, a slow event loop and clock rate differences.
LEASE_SHARE = 0.8
LEASE_BATCH = 1000  # lease keys per script call
RETRY_CAP = 2.0  # seconds between attempts while Redis is unreachable, at most


class ClusterUnavailable(Exception):
    """Redis cannot be reached or refused a command; the message says which step failed."""


class RedisObserver(Protocol):
    """Hears of every Redis command: its step, how long it took, whether it failed."""

    def observe_redis(self, op: str, seconds: float, ok: bool) -> None: ...


class Hooks(Protocol):
    """What the composition root does when ownership or Redis changes."""

    async def acquired(self, record_ids: list[str]) -> list[str]:
        """Leases just taken: load the records' latest state before they are polled.

        Returns the ids it could load; the others are not treated as owned yet."""

    async def changed(self, version: int) -> None:
        """The shared watchlist moved to `version`: adopt additions, drop removals."""

    async def reset(self) -> None:
        """Redis lost its data: write back what this replica knows."""


def member_name() -> str:
    """This replica's name in the cluster: host (the pod), process and a random part."""
    host = socket.gethostname().replace("|", "-")[:63]
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


def _weight(member: str, record_id: str) -> bytes:
    return hashlib.blake2b(f"{member}\0{record_id}".encode(), digest_size=8).digest()


def owner_of(record_id: str, members: Iterable[str]) -> str | None:
    """Rendezvous hashing: the member with the highest weight for this record.

    A member joining or leaving moves only the records it wins or held.
    """
    return max(members, key=lambda m: _weight(m, record_id), default=None)


async def timed(observer: RedisObserver, op: str, call: Awaitable[Any]) -> Any:
    """Await one Redis call, report it, and turn a Redis failure into ClusterUnavailable."""
    started = time.perf_counter()
    try:
        result = await call
    except (RedisError, OSError) as exc:
        observer.observe_redis(op, time.perf_counter() - started, False)
        raise ClusterUnavailable(f"redis {op}: {type(exc).__name__}: {exc}") from None
    observer.observe_redis(op, time.perf_counter() - started, True)
    return result


class Coordinator:
    """This replica's view of the cluster, and the loop that keeps it true."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        lease_ttl: float,
        tick: float,
        wanted: Callable[[], Collection[str]],
        observer: RedisObserver,
        lead: bool = False,
        member: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.member = member or member_name()
        self.prefix = prefix
        self.lease_ttl = lease_ttl
        self.tick = tick
        self._wanted = wanted  # ids of the active records (ownership is only for those)
        self._observer = observer
        self._lead = lead
        self._clock = clock
        self.hooks: Hooks | None = None
        self._tick = redis.register_script(scripts.TICK)
        self._leases_script = redis.register_script(scripts.LEASES)
        self._release = redis.register_script(scripts.RELEASE)
        self._leave = redis.register_script(scripts.LEAVE)
        self.members: tuple[str, ...] = ()
        self.leases: dict[str, str] = {}  # record id -> fencing token held
        self._valid_until = float("-inf")
        self._leader_until = float("-inf")
        self._owners: dict[str, str | None] = {}  # rendezvous cache for self.members
        self.epoch: str | None = None
        self.version = 0
        self.problem: str | None = "not yet in touch with Redis"
        self.handovers = 0  # leases taken after the first round: records that moved here
        self.resets = 0
        self.ticks = 0
        self._ticked = anyio.Event()
        self._leaving = False
        self._log = get_logger("monitor.cluster").bind(member=self.member)

    # --- what the rest of the daemon asks ------------------------------------------------

    def lease_key(self, record_id: str) -> str:
        return f"{self.prefix}:lease:{record_id}"

    def owns(self, record_id: str) -> bool:
        """True while this replica provably holds the record's lease."""
        return record_id in self.leases and self._clock() < self._valid_until

    def fence(self, record_id: str) -> str | None:
        """The fencing token to write this record with, or None when it is not ours."""
        return self.leases.get(record_id) if self.owns(record_id) else None

    def assigned(self, record_id: str) -> bool:
        """True when rendezvous hashing over the live members gives this record to us."""
        owner = self._owners.get(record_id)
        if owner is None and record_id not in self._owners:
            owner = self._owners[record_id] = owner_of(record_id, self.members)
        return owner == self.member

    @property
    def leading(self) -> bool:
        """True while this replica holds the leader lease (job discovery runs here)."""
        return self._clock() < self._leader_until

    @property
    def healthy(self) -> bool:
        return self.problem is None and self._clock() < self._valid_until

    async def wait_ticks(self, count: int) -> None:
        """Return once `count` more rounds have completed (for tests and start-up)."""
        target = self.ticks + count
        while self.ticks < target:
            await self._ticked.wait()

    # --- the loop ---------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Renew every `tick` seconds until cancelled; retry with backoff while Redis is away."""
        task_status.started()
        failures = 0
        next_round = self._clock()
        while not self._leaving:
            try:
                await self.round()
            except ClusterUnavailable as exc:
                failures += 1
                if self.problem is None or failures == 1:
                    self._log.error("redis_unavailable", error=str(exc))
                self.problem = str(exc)
                await anyio.sleep(min(self.tick, RETRY_CAP))
                continue
            if failures:
                self._log.info("redis_available", after_failures=failures)
            failures = 0
            self.problem = None
            # At a fixed rate, not a tick after each round: a slow round must not delay
            # noticing a member that died.
            now = self._clock()
            next_round = max(next_round + self.tick, now)
            await anyio.sleep(next_round - now)

    async def round(self) -> None:
        """One renewal: heartbeat, members, leader, epoch, then the leases."""
        sent = self._clock()
        ttl_ms = int(self.lease_ttl * 1000)
        p = self.prefix
        members, leader, epoch, version = await timed(
            self._observer,
            "heartbeat",
            self._tick(
                keys=[f"{p}:members", f"{p}:leader", f"{p}:epoch", f"{p}:version"],
                args=[self.member, ttl_ms, "1" if self._lead else "0", secrets.token_hex(8)],
            ),
        )
        epoch = _text(epoch)
        if self.epoch is not None and epoch != self.epoch:
            await self._on_reset()
        self.epoch = epoch
        names = tuple(sorted(_text(m) for m in members))
        if names != self.members:
            if self.members:
                self._log.info("cluster_members_changed", members=list(names))
            self.members = names
            self._owners.clear()
        self._leader_until = sent + self.lease_ttl * LEASE_SHARE if leader else float("-inf")
        version = int(version)
        if version != self.version and self.hooks is not None:
            await self.hooks.changed(version)
        self.version = version
        await self._renew(sent, ttl_ms)
        self.ticks += 1
        self._ticked.set()
        self._ticked = anyio.Event()

    async def _renew(self, sent: float, ttl_ms: int) -> None:
        wanted = self._wanted()
        if len(self._owners) > 2 * len(wanted) + 1024:
            self._owners.clear()  # ids of records long gone must not pile up
        mine = [rid for rid in wanted if self.assigned(rid)]
        keep = set(mine)
        given_away = [rid for rid in self.leases if rid not in keep]
        if given_away:
            await self._release_leases(given_away)
        held: dict[str, str] = {}
        for start in range(0, len(mine), LEASE_BATCH):
            chunk = mine[start : start + LEASE_BATCH]
            tokens = await timed(
                self._observer,
                "lease",
                self._leases_script(
                    keys=[
                        f"{self.prefix}:fencing",
                        f"{self.prefix}:members",
                        *map(self.lease_key, chunk),
                    ],
                    args=[self.member, ttl_ms],
                ),
            )
            for rid, tok in zip(chunk, tokens, strict=True):
                if tok:
                    held[rid] = _text(tok)
        new = [rid for rid, tok in held.items() if self.leases.get(rid) != tok]
        # Renewed leases prove ownership at once; a new one only once its record's
        # latest state is loaded, so its first poll compares with what was counted.
        self.leases = {rid: tok for rid, tok in held.items() if rid not in new}
        self._valid_until = sent + self.lease_ttl * LEASE_SHARE
        if new:
            accepted = new if self.hooks is None else await self.hooks.acquired(new)
            if self.ticks:
                self.handovers += len(accepted)
            self.leases.update({rid: held[rid] for rid in accepted})

    async def _release_leases(self, record_ids: list[str]) -> None:
        for rid in record_ids:
            self.leases.pop(rid, None)
        for start in range(0, len(record_ids), LEASE_BATCH):
            chunk = record_ids[start : start + LEASE_BATCH]
            await timed(
                self._observer,
                "release",
                self._release(keys=list(map(self.lease_key, chunk)), args=[self.member]),
            )

    async def _on_reset(self) -> None:
        self.resets += 1
        self._log.error(
            "redis_reset",
            error="Redis lost its data (its epoch key changed); leases, claims and the "
            "shared watchlist are rebuilt from this replica's memory, config, file and discovery",
        )
        self.leases.clear()
        self.version = 0
        if self.hooks is not None:
            await self.hooks.reset()

    async def leave(self) -> None:
        """Give every lease back and leave the members now, so others take over at once."""
        self._leaving = True
        held = list(self.leases)
        self._valid_until = float("-inf")
        self._leader_until = float("-inf")
        try:
            if held:
                await self._release_leases(held)
            p = self.prefix
            await timed(
                self._observer,
                "leave",
                self._leave(keys=[f"{p}:members", f"{p}:leader"], args=[self.member]),
            )
        except ClusterUnavailable as exc:
            self._log.warning("cluster_leave_failed", error=str(exc), leases=len(held))
            return
        self._log.info("cluster_left", leases_released=len(held))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
