"""What every case shares: statistics, subprocesses, the simulator process, settings."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from monitor.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BENCH_TOKEN = "bench-token-not-a-secret"  # noqa: S105 (the simulator's benchmark token)
SUBPROCESS_TIMEOUT = 300.0
# Log lines are rendered as in production, then dropped: their cost is part of the daemon's.
DEVNULL = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def median_of_runs(runs: Sequence[dict[str, Any]], key: str) -> float:
    """The median of one figure over repeated runs."""
    return median([float(r[key]) for r in runs if r.get(key) is not None])


def process_cpu() -> float:
    """CPU seconds (user + system) of this process, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_split() -> tuple[float, float]:
    """(user, system) CPU seconds of this process, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def rss_bytes() -> tuple[int, int]:
    """(current RSS, peak RSS) of this process in bytes, from /proc."""
    current = peak = 0
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    return current, peak


def emit(result: dict[str, Any]) -> None:
    """A subprocess's answer: one JSON line on stdout, the last line it prints."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_json(module: str, *args: str, timeout: float = SUBPROCESS_TIMEOUT) -> dict[str, Any]:
    """Run `python -m module args...` to the end and return the JSON line it printed last."""
    proc = subprocess.run(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=_env(),
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"{module} printed no result:\n{proc.stdout}\n{proc.stderr}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@dataclass
class SimProcess:
    url: str
    records: list[str]
    proc: subprocess.Popen[str]


@contextmanager
def simulator_process(
    *,
    records: int,
    speed: float = 1.0,
    duration_scale: float = 20.0,
    seed: int = 1,
    accept_any_auth: bool = False,
    finished: bool = False,
) -> Iterator[SimProcess]:
    """The simulator in a process of its own, serving `records` builds that are under way."""
    args = [
        sys.executable,
        "-m",
        "benchmarks.simproc",
        "--records",
        str(records),
        "--speed",
        str(speed),
        "--duration-scale",
        str(duration_scale),
        "--seed",
        str(seed),
    ]
    if accept_any_auth:
        args.append("--accept-any-auth")
    if finished:
        args.append("--finished")
    proc = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=_env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulator process died before it served")
        info = json.loads(line)
        yield SimProcess(info["url"], info["records"], proc)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # the simulator exits when its stdin closes
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_settings(url: str, records: list[str], **overrides: Any) -> Settings:
    """Daemon settings for a benchmark: loopback, the benchmark token, no request budget.

    The rate budget (`MONITOR_RATE_LIMIT`, default 5/s) would measure the limiter, not
    the daemon, so it is set far above any rate here; no state file is written.
    """
    values: dict[str, Any] = {
        "endpoint": url,
        "auth_token": SecretStr(BENCH_TOKEN),
        "records": records,
        "host": "127.0.0.1",
        "port": 0,
        "request_timeout": 10.0,
        # Far above any rate here: the benchmark measures the daemon, not its rate budget.
        "rate_limit": 1_000_000.0,
        "rate_burst": 1_000_000,
        "state_path": ":memory:",
    }
    values.update(overrides)
    return Settings(**values)


def sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)
