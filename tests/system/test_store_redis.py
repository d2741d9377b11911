"""The Redis store and trace outbox against a real redis-server: what a second replica reads."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from monitor.domain import RecordSnapshot, RecordState, StageSnapshot
from monitor.store import StoredRecord, StoreError, Tombstone
from monitor.store.outbox import RedisOutbox, outbox_for
from monitor.store.redis import RedisStore
from tests.support.redis import RedisServer

RID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
OTHER = "1f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def stage(status: str) -> StageSnapshot:
    return StageSnapshot(
        key="stage1", display_name="Build", status=status, status_code=0, sequence=1,
        duration_ms=1500, build_duration_ms=1000, pending_duration_ms=500,
        start_time=1_790_000_000.0, finish_time=None,
    )  # fmt: skip


async def test_a_second_replica_reads_what_the_first_wrote_and_claims_are_won_once(
    redis_server: RedisServer,
) -> None:
    a_conn, b_conn = Redis.from_url(redis_server.url), Redis.from_url(redis_server.url)
    try:
        lease = f"t:lease:{RID}"
        a = RedisStore(a_conn, "t", member="a", lease_key=lambda _rid: lease, claim_ttl=60)
        b = RedisStore(b_conn, "t", member="b", lease_key=lambda _rid: lease, claim_ttl=60)
        await a_conn.set(lease, "a|1")  # a owns the record: its writes carry the token
        a.fence = lambda _rid: "a|1"
        rec = StoredRecord(RID, labels={"team": "x"}, source="api", added_at=5.0)
        rec.snapshot = RecordSnapshot(RID, (stage("RUNNING"),), 6.0)
        await a.save(rec)
        (loaded,) = await b.load()
        assert loaded == rec
        assert b.version == 1

        done = StoredRecord(RID, RecordState.COMPLETE, {"team": "x"}, "api", 5.0, 9.0, "SUCCESS")
        done.counted = frozenset({"stage1"})
        assert await a.save_claiming(done, ["f|stage1|SUCCESS", "c"]) == {"f|stage1|SUCCESS", "c"}
        assert await a.save_claiming(done, ["c"]) == {"c"}  # its own claim again: still its
        stale = StoredRecord(RID, labels={"team": "x"}, source="api", added_at=5.0)
        # b is no owner: its claims are checked, its state does not overwrite a's.
        assert await b.save_claiming(stale, ["c", "t|x||SUCCESS"]) == {"t|x||SUCCESS"}
        assert (await b.fetch([RID]))[RID] == done

        now, changed = await b.changes_since(0)
        assert (now, changed) == (1, [RID])
        await b.delete(RID)  # the admin API of another replica
        assert await a.changes_since(1) == (2, [RID])
        done.result = "FAILURE"
        with pytest.raises(StoreError, match="removed"):
            await a.save(done)  # the owner's poll, in flight at the delete, is refused
        assert (await b.fetch([RID]))[RID] is None
    finally:
        await a_conn.aclose()
        await b_conn.aclose()


async def test_a_fenced_out_save_is_refused(redis_server: RedisServer) -> None:
    conn = Redis.from_url(redis_server.url)
    try:
        store = RedisStore(
            conn, "t", member="a", lease_key=lambda rid: f"t:lease:{rid}", claim_ttl=60
        )
        rec = StoredRecord(RID, added_at=1.0)
        await store.save(rec)
        await conn.set(f"t:lease:{RID}", "b|7")  # another replica holds the lease now
        store.fence = lambda _rid: "a|3"
        rec.state = RecordState.COMPLETE
        with pytest.raises(StoreError, match="fenced out"):
            await store.save(rec)
        assert (await store.fetch([RID]))[RID] == StoredRecord(RID, added_at=1.0)
    finally:
        await conn.aclose()


async def test_the_trace_outbox_in_redis_resumes_only_this_replicas_records(
    redis_server: RedisServer,
) -> None:
    conn = Redis.from_url(redis_server.url)
    try:
        outbox = outbox_for(RedisStore(conn, "t", member="a", claim_ttl=60))
        assert isinstance(outbox, RedisOutbox)
        await outbox.add(RID, 10.0)
        await outbox.add(RID, 20.0)  # the first completion time is kept
        await outbox.add(OTHER, 15.0)
        assert [(p.record_id, p.completed_at) for p in await outbox.pending()] == [
            (RID, 10.0),
            (OTHER, 15.0),
        ]
        outbox.mine = lambda rid: rid == OTHER
        assert [p.record_id for p in await outbox.pending()] == [OTHER]
        await outbox.remove([OTHER])
        assert await outbox.pending() == []
        outbox.mine = lambda _rid: True
        assert [p.record_id for p in await outbox.pending()] == [RID]
    finally:
        await conn.aclose()


def keys(redis_server: RedisServer) -> list[str]:
    return sorted(redis_server.command("--scan", "--pattern", "t:*").split())


async def test_retire_keeps_one_tombstone_forget_removes_it_and_a_restart_keeps_it(
    redis_server: RedisServer,
) -> None:
    conn = Redis.from_url(redis_server.url)
    other = Redis.from_url(redis_server.url)
    try:
        a = RedisStore(conn, "t", member="a", claim_ttl=60)
        b = RedisStore(other, "t", member="b", claim_ttl=60)
        done = StoredRecord(RID, RecordState.COMPLETE, {"team": "x"}, "api", 5.0, 9.5, "SUCCESS")
        await a.save_claiming(done, ["c"])
        late = StoredRecord(OTHER, RecordState.COMPLETE, {}, "config", 5.0, 20.0, "FAILURE")
        await a.save(late)
        assert f"t:rec:{RID}" in keys(redis_server) and f"t:claims:{RID}" in keys(redis_server)

        await a.retire([Tombstone.of(done), Tombstone.of(late)])
        # The full records and their claims are gone; two fields of two shared keys remain.
        assert not any(k.startswith(("t:rec:", "t:claims:")) for k in keys(redis_server))
        expected = [
            Tombstone(RID, RecordState.COMPLETE, "SUCCESS", 9.5, "api"),
            Tombstone(OTHER, RecordState.COMPLETE, "FAILURE", 20.0, "config"),
        ]
        assert await b.load_tombstones() == expected
        assert await b.load() == []
        assert await b.tombstone(RID) == expected[0]
        assert await b.tombstone("unknown") is None
        # Another replica learns of it from the changes feed: gone from the records.
        _now, changed = await b.changes_since(0)
        assert changed is not None and set(changed) == {RID, OTHER}
        assert (await b.fetch([RID]))[RID] is None
        # No second life through a save from a replica that had not heard yet.
        with pytest.raises(StoreError, match="retired"):
            await b.save(StoredRecord(RID, labels={"team": "y"}, source="api", added_at=30.0))
        await a.retire([Tombstone.of(done)])  # again (an older view of the members): no-op
        assert await b.load_tombstones() == expected

        # A restart of Redis with its data keeps the tombstones.
        await conn.aclose()
        await other.aclose()
        redis_server.stop()
        redis_server.start()
        conn, other = Redis.from_url(redis_server.url), Redis.from_url(redis_server.url)
        a = RedisStore(conn, "t", member="a", claim_ttl=60)
        assert await a.load_tombstones() == expected

        # Forgetting: strictly before the cutoff, oldest first, in batches; keys go.
        assert await a.forget(9.5, 10) == []
        assert await a.forget(100.0, 1) == [RID]
        assert await a.forget(100.0, 1) == [OTHER]
        assert await a.forget(100.0, 1) == []
        assert await a.load_tombstones() == []
        assert not any(k.startswith(("t:tombstones", "t:retired")) for k in keys(redis_server))
        assert a.size_bytes() == 0
    finally:
        await conn.aclose()
        await other.aclose()
