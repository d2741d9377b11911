"""The deploy/ files and the real processes the deploy checks run against.

Used by the deploy tests and by two Makefile targets:

    python -m tests.support.deploy sync-rules    # deploy/prometheus/alerts.yml -> PrometheusRule
    python -m tests.support.deploy live-metrics  # /metrics of a daemon watching the simulator

The processes are the real commands (`python -m monitor simulate` / `run`, the
`prometheus` binary), each on 127.0.0.1 with a port of its own, stopped by whoever
started them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS_RULE = DEPLOY / "kubernetes" / "base" / "prometheusrule.yaml"
DASHBOARD = DEPLOY / "grafana" / "codearts-stage-monitor.json"
JOBS_DASHBOARD = DEPLOY / "grafana" / "codearts-jobs.json"
JOB = "codearts-stage-monitor"  # the job name the rules and the dashboard expect

T = TypeVar("T")

# --- the PrometheusRule is generated from alerts.yml ----------------------------------------

_RULE_HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by `make deploy-sync`: edit that file
# (and its unit tests, alerts_test.yml), not this one.
# The Prometheus Operator picks PrometheusRules by label (`ruleSelector`): with
# kube-prometheus-stack add `release: <its release name>` to the labels below.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: codearts-stage-monitor
  labels:
    app.kubernetes.io/name: codearts-stage-monitor
    app.kubernetes.io/component: alert-rules
spec:
"""


def render_prometheus_rule(alerts_text: str) -> str:
    """The PrometheusRule manifest whose spec is the rules file, comments and all."""
    lines = alerts_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    body = "".join(f"  {line}\n" if line else "\n" for line in lines[start:])
    return _RULE_HEADER + body


def sync_prometheus_rule() -> bool:
    """Rewrite the PrometheusRule from alerts.yml; True if it changed."""
    text = render_prometheus_rule(ALERTS.read_text())
    old = PROMETHEUS_RULE.read_text() if PROMETHEUS_RULE.exists() else None
    if old == text:
        return False
    PROMETHEUS_RULE.write_text(text)
    return True


def load_yaml(path: Path) -> Any:
    with path.open() as fh:
        return yaml.safe_load(fh)


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def dashboard_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that shows data (rows are containers, not panels), nested ones too."""
    out: list[dict[str, Any]] = []
    for p in dashboard["panels"]:
        if p["type"] == "row":
            out.extend(p.get("panels", []))
        else:
            out.append(p)
    return out


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on right now (for programs that cannot take port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def poll(what: str, check: Callable[[], T | None], timeout: float, every: float = 0.2) -> T:
    """Call `check` until it returns something other than None; fail after `timeout` seconds.

    Only for other processes, which can signal nothing: in-process code awaits events.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
        except (OSError, ValueError, KeyError) as exc:  # not up yet, or half an answer
            last_error, result = exc, None
        if result is not None:
            return result
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"{what}: not seen within {timeout:.0f} s{detail}")
        time.sleep(every)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback)
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def http_post_json(url: str, payload: dict[str, Any], timeout: float = 5.0) -> Any:
    req = urllib.request.Request(  # noqa: S310 (loopback)
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
        return json.loads(resp.read())


@dataclass
class Process:
    """A child process whose stdout and stderr go to a log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def event(self, name: str) -> dict[str, Any] | None:
        """The first JSON log line whose `event` is `name`, if written yet."""
        for line in self.output().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    data: dict[str, Any] = json.loads(line)
                    if data.get("event") == name:
                        return data
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.proc.returncode}:\n{self.output()[-4000:]}"
            )
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update(extra)
    return env


def spawn(name: str, args: list[str], workdir: Path, env: dict[str, str]) -> Process:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    return Process(name, proc, log)


@dataclass
class Monitor:
    """The simulator and a daemon watching every record it has, as separate processes."""

    simulator: Process
    daemon: Process
    simulator_url: str
    metrics_url: str
    daemon_port: int
    records: list[str]
    token: str
    processes: list[Process] = field(default_factory=list)


@contextlib.contextmanager
def running_monitor(
    workdir: Path,
    *,
    records: int = 40,
    seed: int = 11,
    speed: float = 2.0,
    duration_scale: float = 0.1,
    poll_interval: float = 1.0,
    timeout: float = 20.0,
    projects: int = 0,
    jobs_per_project: int = 6,
    build_every: float = 10.0,
) -> Iterator[Monitor]:
    """`stage-monitor simulate` and `stage-monitor run` on loopback, until the block ends.

    With `projects`, the simulator also serves that many projects of `jobs_per_project`
    jobs building every `build_every` simulated seconds, and the daemon discovers them.
    """
    token = secrets.token_urlsafe(16)
    python = sys.executable
    started: list[Process] = []
    try:
        sim = spawn(
            "simulator",
            [
                python,
                "-m",
                "monitor",
                "simulate",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--seed",
                str(seed),
                "--records",
                str(records),
                "--speed",
                str(speed),
                "--duration-scale",
                str(duration_scale),
                # One argument: a random token may start with "-", which argparse would
                # take for an option.
                f"--token={token}",
                "--projects",
                str(projects),
                "--jobs-per-project",
                str(jobs_per_project),
                "--build-every",
                str(build_every),
            ],
            workdir,
            _clean_env(),
        )
        started.append(sim)
        sim_started = poll("simulator_started", lambda: sim.event("simulator_started"), timeout)
        record_ids: list[str] = list(sim_started["records"])
        daemon = spawn(
            "daemon",
            [python, "-m", "monitor", "run"],
            workdir,
            _clean_env(
                MONITOR_ENDPOINT=str(sim_started["url"]),
                MONITOR_AUTH_TOKEN=token,
                MONITOR_RECORDS=",".join(record_ids),
                MONITOR_HOST="127.0.0.1",
                MONITOR_PORT="0",
                MONITOR_POLL_INTERVAL=str(poll_interval),
                MONITOR_REQUEST_TIMEOUT="2",
                MONITOR_BACKOFF_MAX="4",
                MONITOR_LOG_FORMAT="json",
                # No state file to leave behind, and a request budget above 40 records
                # a second (the default 5/s would slow the test, not test anything).
                MONITOR_STATE_PATH=":memory:",
                MONITOR_RATE_LIMIT="200",
                MONITOR_RATE_BURST="200",
                MONITOR_PROJECTS=",".join(sim_started.get("projects", [])),
                MONITOR_DISCOVERY_INTERVAL="1",
            ),
        )
        started.append(daemon)
        daemon_started = poll("daemon_started", lambda: daemon.event("daemon_started"), timeout)
        port = int(daemon_started["port"])
        yield Monitor(
            simulator=sim,
            daemon=daemon,
            simulator_url=str(sim_started["url"]),
            metrics_url=f"http://127.0.0.1:{port}/metrics",
            daemon_port=port,
            records=record_ids,
            token=token,
            processes=started,
        )
    finally:
        for p in reversed(started):
            p.stop()


@dataclass
class Prometheus:
    process: Process
    url: str

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; the `data` of a successful answer."""
        query = urllib.parse.urlencode(params)
        status, text = http_get(f"{self.url}/api/v1/{path}" + (f"?{query}" if query else ""))
        body = json.loads(text)
        if status != 200 or body.get("status") != "success":
            raise AssertionError(f"Prometheus /api/v1/{path} {params}: {status} {text[:2000]}")
        return body["data"]


@contextlib.contextmanager
def running_prometheus(
    workdir: Path, config: dict[str, Any], timeout: float = 20.0
) -> Iterator[Prometheus]:
    """The `prometheus` binary with `config`, on a loopback port, until the block ends."""
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    proc = spawn(
        "prometheus",
        [
            "prometheus",
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ],
        workdir,
        _clean_env(),
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool | None:
            if proc.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{proc.output()[-4000:]}")
            return True if http_get(f"{url}/-/ready", timeout=1)[0] == 200 else None

        poll("prometheus ready", ready, timeout)
        yield Prometheus(proc, url)
    finally:
        proc.stop()


def live_metrics() -> str:
    """/metrics of a daemon watching the simulator, once every family has series."""
    with tempfile.TemporaryDirectory() as tmp, running_monitor(Path(tmp), records=12) as mon:

        def complete() -> str | None:
            status, text = http_get(mon.metrics_url)
            done = status == 200 and all(
                f"\n{name}" in text
                for name in (
                    "codearts_build_stage_finish_timestamp_seconds{",
                    "codearts_build_stage_finished_duration_seconds_bucket{",
                    "codearts_build_stage_finished_pending_seconds_bucket{",
                    "codearts_build_stage_transitions_total{",
                    "stage_monitor_api_request_duration_seconds_bucket{",
                )
            )
            return text if done else None

        return poll("every family with series in /metrics", complete, 20)


def main(argv: list[str]) -> int:
    if argv == ["sync-rules"]:
        changed = sync_prometheus_rule()
        print(f"{PROMETHEUS_RULE.relative_to(ROOT)}: {'updated' if changed else 'up to date'}")
        return 0
    if argv == ["live-metrics"]:
        sys.stdout.write(live_metrics())
        return 0
    print("usage: python -m tests.support.deploy sync-rules|live-metrics", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
