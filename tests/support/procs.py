"""Real processes for system tests: `stage-monitor simulate` and `run`, their JSON logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.loopback import TOKEN


def wait(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    """Poll `predicate` (another process's output: nothing to await) until it is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def events(path: Path, event: str | None = None) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            try:
                e = json.loads(line)
            except ValueError:
                continue  # the last line of a killed process may be cut short
            if event is None or e.get("event") == event:
                out.append(e)
    return out


def get_text(url: str, data: dict[str, Any] | None = None) -> str:
    """GET (or POST `data` as JSON) and the body as text, whatever the status."""
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method="POST" if body else "GET")  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return str(resp.read().decode())
    except urllib.error.HTTPError as exc:  # /readyz says 503 with a JSON body
        return str(exc.read().decode())


def get(url: str, data: dict[str, Any] | None = None) -> Any:
    """As get_text, with a JSON body parsed."""
    raw = get_text(url, data)
    return json.loads(raw) if raw.startswith(("{", "[")) else raw


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "OTEL_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def monitor_env(url: str, records: list[str], state: Path, **extra: str) -> dict[str, str]:
    """A `run` process's environment: the simulator at `url`, these records, this state
    file, JSON logs, a free port, and polls and a budget fast enough for a test."""
    return clean_env(
        **{
            "MONITOR_ENDPOINT": url,
            "MONITOR_AUTH_TOKEN": TOKEN,
            "MONITOR_RECORDS": ",".join(records),
            "MONITOR_STATE_PATH": str(state),
            "MONITOR_HOST": "127.0.0.1",
            "MONITOR_PORT": "0",
            "MONITOR_LOG_FORMAT": "json",
            "MONITOR_POLL_INTERVAL": "0.1",
            "MONITOR_RATE_LIMIT": "400",
            "MONITOR_RATE_BURST": "40",
            **extra,
        }
    )


@contextmanager
def process(args: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", *args], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


@contextmanager
def simulator(tmp_path: Path, *args: str) -> Iterator[tuple[str, list[str]]]:
    """`stage-monitor simulate` on a free port: its URL and the record ids it made."""
    log = tmp_path / "simulator.log"
    with process(["simulate", "--port", "0", "--token", TOKEN, *args], log, clean_env()) as proc:
        started = wait(lambda: events(log, "simulator_started"), 30, "the simulator")[0]
        try:
            yield started["url"], started["records"]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
