"""Case 5, the cluster: 1 replica with 1,000 records against 3 replicas with 3,000 on one Redis.

Same poll interval, so each replica polls as often as the single one does. From
one run it prints: CPU per poll of each replica against the single replica's
(target: within 1.2x), Redis commands per poll (target: <= 3; counted by
Redis itself with MONITOR, commands run inside our scripts not counted, and
by the replicas as round trips), and the time from kill -9 of one replica
until the others hold every record's lease (target: <= MONITOR_LEASE_TTL + one
interval).

Usage of the worker (one replica, prints its port, then its figures):
    python -m benchmarks.cluster replica --url URL --records-file PATH [--redis-url URL] ...
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
from pydantic import SecretStr

from benchmarks.common import (
    DEVNULL,
    ROOT,
    _env,
    bench_settings,
    emit,
    process_cpu,
    simulator_process,
)
from monitor.app import Daemon
from monitor.logging import configure_logging

SINGLE, EACH, REPLICAS = 1000, 1000, 3
INTERVAL = 10.0
LEASE_TTL = 5.0


# --- the worker: one replica in its own process ----------------------------------------------


def _polls(daemon: Daemon) -> float:
    value = daemon.metrics.registry.get_sample_value(
        "stage_monitor_polls_total", {"outcome": "success"}
    )
    return float(value or 0.0)


async def _replica(args: argparse.Namespace) -> None:
    configure_logging("json", "warning", stream=DEVNULL)
    records = json.loads(await anyio.Path(args.records_file).read_text())
    extra: dict[str, Any] = {"poll_interval": args.interval, "max_concurrency": 16}
    if args.redis_url:
        extra |= {"redis_url": SecretStr(args.redis_url), "lease_ttl": args.lease_ttl}
    daemon = Daemon(bench_settings(args.url, records, **extra))
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        emit({"port": daemon.port})
        await anyio.sleep(args.warmup)
        cpu0, polls0, cmds0 = process_cpu(), _polls(daemon), daemon.metrics.redis_commands
        await anyio.sleep(args.window)
        cpu1, polls1, cmds1 = process_cpu(), _polls(daemon), daemon.metrics.redis_commands
        polls = polls1 - polls0
        emit(
            {
                "polls": polls,
                "cpu_seconds": cpu1 - cpu0,
                "cpu_per_poll_us": (cpu1 - cpu0) / polls * 1e6 if polls else None,
                "redis_round_trips": cmds1 - cmds0,
            }
        )
        await anyio.to_thread.run_sync(sys.stdin.read)  # until the benchmark closes our stdin
        tg.cancel_scope.cancel()


# --- the case ---------------------------------------------------------------------------------


class Replica:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        assert proc.stdout is not None
        self.port = json.loads(proc.stdout.readline())["port"]

    def result(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("a replica died before it reported")
        out: dict[str, Any] = json.loads(line)
        return out

    def owned(self) -> float:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("stage_monitor_owned_records "):
                    return float(line.split()[1])
        return 0.0

    def stop(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _start(
    url: str, records: Path, interval: float, warmup: float, window: float, redis: str | None
) -> Replica:
    args = [
        sys.executable, "-m", "benchmarks.cluster", "replica", "--url", url,
        "--records-file", str(records), "--interval", str(interval),
        "--warmup", str(warmup), "--window", str(window), "--lease-ttl", str(LEASE_TTL),
    ]  # fmt: skip
    if redis:
        args += ["--redis-url", redis]
    proc = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=_env()
    )
    return Replica(proc)


@contextmanager
def _redis_server() -> Iterator[int]:
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is missing: `make tools` installs Debian's package")
    with tempfile.TemporaryDirectory() as workdir, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
        s.close()
        proc = subprocess.Popen(  # noqa: S603
            [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir,
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=10)


class _Monitor:
    """`redis-cli monitor` for a window: commands clients sent, not those inside scripts."""

    def __init__(self, port: int) -> None:
        cli = shutil.which("redis-cli") or "redis-cli"
        self.proc = subprocess.Popen(  # noqa: S603
            [cli, "-p", str(port), "monitor"], stdout=subprocess.PIPE, text=True
        )
        self.counting = False
        self.sent = 0
        self.in_scripts = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if not self.counting:
                continue
            if " lua] " in line:
                self.in_scripts += 1
            elif line[:1].isdigit():
                self.sent += 1

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def case_cluster(smoke: bool) -> dict[str, Any]:
    each = 60 if smoke else EACH
    single_n = 60 if smoke else SINGLE
    interval = 1.0 if smoke else INTERVAL
    warmup = interval + 2.0
    window = 2.0 if smoke else 20.0
    out: dict[str, Any] = {
        "interval_seconds": interval,
        "lease_ttl_seconds": LEASE_TTL,
        "window_seconds": window,
    }
    with tempfile.TemporaryDirectory() as tmp:
        with simulator_process(records=single_n) as sim:
            path = Path(tmp) / "single.json"
            path.write_text(json.dumps(sim.records))
            single = _start(sim.url, path, interval, warmup, window, None)
            try:
                out["single"] = single.result() | {"records": single_n}
            finally:
                single.stop()
        with simulator_process(records=each * REPLICAS) as sim, _redis_server() as port:
            path = Path(tmp) / "cluster.json"
            path.write_text(json.dumps(sim.records))
            redis = f"redis://127.0.0.1:{port}/0"
            monitor = _Monitor(port)
            replicas = [
                _start(sim.url, path, interval, warmup, window, redis) for _ in range(REPLICAS)
            ]
            try:
                # Counted over the same window as the replicas measure (they started together).
                time.sleep(warmup)
                monitor.counting = True
                time.sleep(window)
                monitor.counting = False
                results = [r.result() for r in replicas]
                total = len(sim.records)
                victim, survivors = replicas[0], replicas[1:]
                victim.proc.kill()
                killed = time.monotonic()
                victim.proc.wait()
                deadline = killed + 10 * (LEASE_TTL + interval)
                while sum(r.owned() for r in survivors) < total:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the survivors never took every record")
                    time.sleep(0.05)
                takeover = time.monotonic() - killed
            finally:
                monitor.close()
                for r in replicas:
                    r.stop()
    polls = sum(r["polls"] for r in results)
    out["replicas"] = results
    out["records"] = each * REPLICAS
    out["redis_commands_per_poll"] = monitor.sent / polls if polls else None
    out["redis_commands_in_scripts_per_poll"] = monitor.in_scripts / polls if polls else None
    out["round_trips_per_poll"] = sum(r["redis_round_trips"] for r in results) / polls
    worst = max(r["cpu_per_poll_us"] for r in results)
    out["cpu_ratio_worst"] = worst / out["single"]["cpu_per_poll_us"]
    out["takeover_seconds"] = takeover
    out["takeover_target_seconds"] = LEASE_TTL + interval
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("replica")
    r.add_argument("--url", required=True)
    r.add_argument("--records-file", required=True)
    r.add_argument("--redis-url")
    r.add_argument("--interval", type=float, default=INTERVAL)
    r.add_argument("--lease-ttl", type=float, default=LEASE_TTL)
    r.add_argument("--warmup", type=float, required=True)
    r.add_argument("--window", type=float, required=True)
    anyio.run(_replica, p.parse_args())


if __name__ == "__main__":
    main()
