"""Real processes on one Redis: kill -9 one replica, SIGTERM another.

Three `stage-monitor run` processes share a real redis-server and a
`stage-monitor simulate` process. What a user sees is asserted: the survivors'
/metrics (who owns what), every process's log lines (each transition and each
completion logged once across the cluster) and exit codes.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from tests.support.loopback import TOKEN
from tests.support.procs import clean_env as _env
from tests.support.procs import events as _events
from tests.support.procs import get_text as _get
from tests.support.procs import process as _process
from tests.support.procs import simulator as _simulator
from tests.support.procs import wait as _wait
from tests.support.redis import RedisServer
from tests.support.samples import Samples, parse_samples, value

INTERVAL = 0.3


class Replica:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log
        started = _wait(lambda: _events(log, "daemon_started"), 30, f"daemon {log.name}")[0]
        self.port = started["port"]

    def samples(self) -> Samples:
        return parse_samples(_get(f"http://127.0.0.1:{self.port}/metrics"))


def _start_cluster(
    stack: ExitStack, tmp_path: Path, url: str, records: list[str], redis: RedisServer, **env: str
) -> list[Replica]:
    settings = dict(
        MONITOR_ENDPOINT=url,
        MONITOR_AUTH_TOKEN=TOKEN,
        MONITOR_RECORDS=",".join(records),
        MONITOR_REDIS_URL=redis.url,
        MONITOR_HOST="127.0.0.1",
        MONITOR_PORT="0",
        MONITOR_LOG_FORMAT="json",
        MONITOR_POLL_INTERVAL=str(INTERVAL),
        MONITOR_BACKOFF_MAX="0.5",
        MONITOR_RATE_LIMIT="400",
        MONITOR_RATE_BURST="40",
        **env,
    )
    out = []
    for i in range(3):
        log = tmp_path / f"replica{i}.log"
        proc = stack.enter_context(_process(["run"], log, _env(**settings)))
        out.append(Replica(proc, log))
    return out


def _sum(replicas: list[Replica], name: str, **labels: str) -> float:
    return sum(value(r.samples(), name, **labels) or 0.0 for r in replicas)


def _all_taken(replicas: list[Replica]) -> bool:
    """Every replica sees only these members, and they hold a lease for every active record."""
    scraped = [r.samples() for r in replicas]
    members = [value(x, "stage_monitor_cluster_members") for x in scraped]
    if members != [len(replicas)] * len(replicas):
        return False
    active = sum(value(x, "stage_monitor_records", state="active") or 0 for x in scraped)
    owned = sum(value(x, "stage_monitor_owned_records") or 0 for x in scraped)
    return active > 0 and owned == active


def _assert_each_logged_once(replicas: list[Replica], records: list[str]) -> None:
    transitions = Counter(
        (e["record_id"], e["build_stage"], e["from_status"], e["to_status"])
        for r in replicas
        for e in _events(r.log, "stage_transition")
    )
    assert transitions
    assert [t for t, c in transitions.items() if c > 1] == []
    completions = Counter(
        e["record_id"] for r in replicas for e in _events(r.log, "record_complete")
    )
    assert sorted(completions) == sorted(records)  # nothing missed
    assert max(completions.values()) == 1  # nothing twice


def test_kill_9_of_one_replica_its_records_are_taken_over_within_ttl_plus_an_interval(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    ttl = 2.0
    with _simulator(
        tmp_path, "--records", "60", "--seed", "5", "--duration-scale", "0.03"
    ) as (url, records), ExitStack() as stack:  # fmt: skip
        replicas = _start_cluster(
            stack, tmp_path, url, records, redis_server, MONITOR_LEASE_TTL=str(ttl)
        )
        _wait(lambda: _all_taken(replicas), 30, "three replicas sharing the records")
        victim, survivors = replicas[0], replicas[1:]
        owned = value(victim.samples(), "stage_monitor_owned_records") or 0
        assert owned > 0
        victim.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        assert victim.proc.wait(timeout=10) == -signal.SIGKILL
        _wait(lambda: _all_taken(survivors), 30, "the survivors to take every record", 0.02)
        took = time.monotonic() - killed
        n = len(records)
        _wait(
            lambda: _sum(survivors, "stage_monitor_records", state="complete") == n,
            60,
            "every record to complete",
        )
        handovers = _sum(survivors, "stage_monitor_lease_handovers_total")
    assert took <= ttl + INTERVAL + 0.3, took  # 0.3 s: how often this test can look
    assert handovers >= owned
    _assert_each_logged_once(replicas, records)


def test_sigterm_hands_a_replicas_records_over_without_waiting_for_the_ttl(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    ttl = 10.0
    with _simulator(
        tmp_path, "--records", "30", "--seed", "9", "--duration-scale", "0.05"
    ) as (url, records), ExitStack() as stack:  # fmt: skip
        replicas = _start_cluster(
            stack, tmp_path, url, records, redis_server, MONITOR_LEASE_TTL=str(ttl)
        )
        _wait(lambda: _all_taken(replicas), 30, "three replicas sharing the records")
        leaving, staying = replicas[0], replicas[1:]
        leaving.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        assert leaving.proc.wait(timeout=20) == 0
        _wait(lambda: _all_taken(staying), ttl, "the others to take its records", 0.02)
        took = time.monotonic() - sent
    assert took < ttl / 3, took
    left = _events(leaving.log, "cluster_left")
    assert left and left[0]["leases_released"] > 0
