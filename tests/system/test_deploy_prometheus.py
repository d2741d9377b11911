"""End to end with a real Prometheus: the simulator, the daemon and Prometheus as processes.

Prometheus scrapes the daemon every second on loopback and loads
deploy/prometheus/alerts.yml as shipped, plus a copy of it whose `for:` durations
are cut to 1 s (labelled `e2e_copy="short-for"`): the shipped rules wait 5 to 15
minutes before firing, which a test cannot. Only `for:` differs in the copy;
the shipped `for:` values are covered by `promtool test rules`.

The tests run in file order against one stack; the last one injects faults.
"""

from __future__ import annotations

import math
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor import __version__
from tests.support.deploy import (
    ALERTS,
    DASHBOARD,
    DEPLOY,
    JOB,
    JOBS_DASHBOARD,
    Monitor,
    Prometheus,
    dashboard_panels,
    http_get,
    http_post_json,
    load_dashboard,
    load_yaml,
    poll,
    running_monitor,
    running_prometheus,
)

SHORT_FOR = "1s"
RATE_INTERVAL = "10s"  # what Grafana's $__rate_interval would be with a 1 s scrape, roughly


@dataclass
class Stack:
    monitor: Monitor
    prom: Prometheus
    started: float  # unix time Prometheus started scraping

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.prom.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(self, expr: str) -> list[dict[str, Any]]:
        now = time.time()
        data = self.prom.api(
            "query_range", query=expr, start=f"{self.started:.3f}", end=f"{now:.3f}", step="1"
        )
        result: list[dict[str, Any]] = data["result"]
        return result


def short_for_copy(rules: dict[str, Any]) -> dict[str, Any]:
    """The rules with every `for:` cut to SHORT_FOR and a label telling the copy apart."""
    groups = []
    for group in rules["groups"]:
        new_rules = []
        for rule in group["rules"]:
            rule = dict(rule)
            if "for" in rule:
                rule["for"] = SHORT_FOR
            rule["labels"] = {**rule.get("labels", {}), "e2e_copy": "short-for"}
            new_rules.append(rule)
        groups.append({**group, "name": group["name"] + "-short-for", "rules": new_rules})
    return {"groups": groups}


def prometheus_config(workdir: Path, daemon_port: int) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml, pointed at the test daemon and sped up."""
    config: dict[str, Any] = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    shutil.copy(ALERTS, workdir / "alerts.yml")
    (workdir / "alerts-short-for.yml").write_text(
        yaml.safe_dump(short_for_copy(load_yaml(ALERTS)), sort_keys=False)
    )
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(workdir / "alerts.yml"), str(workdir / "alerts-short-for.yml")]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == JOB
    job["scrape_interval"] = "1s"
    job["scrape_timeout"] = "1s"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{daemon_port}"]}]
    return config


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if shutil.which("prometheus") is None:
        pytest.fail("the `prometheus` binary is needed: apt-get install prometheus (.ci/run does)")
    workdir = tmp_path_factory.mktemp("e2e")
    with running_monitor(workdir, projects=1) as mon:
        config = prometheus_config(workdir, mon.daemon_port)
        with running_prometheus(workdir, config) as prom:
            yield Stack(mon, prom, time.time())


def names_in_prometheus(stack: Stack) -> set[str]:
    return {r["metric"]["__name__"] for r in stack.query(f'count by (__name__) ({{job="{JOB}"}})')}


# The metric contract (docs/metrics.md), as Prometheus stores it.
CONTRACT = {
    "codearts_build_stage_status",
    "codearts_build_stage_status_code",
    "codearts_build_stage_duration_seconds",
    "codearts_build_stage_build_duration_seconds",
    "codearts_build_stage_pending_seconds",
    "codearts_build_stage_start_timestamp_seconds",
    "codearts_build_stage_finish_timestamp_seconds",
    "codearts_build_record_complete",
    "codearts_build_stages_finished_total",
    "codearts_build_stage_finished_duration_seconds_bucket",
    "codearts_build_stage_finished_duration_seconds_sum",
    "codearts_build_stage_finished_duration_seconds_count",
    "codearts_build_stage_finished_pending_seconds_bucket",
    "codearts_build_stage_transitions_total",
    "stage_monitor_records",
    "stage_monitor_polls_total",
    "stage_monitor_api_requests_total",
    "stage_monitor_api_request_duration_seconds_bucket",
    "stage_monitor_build_info",
    "codearts_build_records_finished_total",
    "codearts_build_record_duration_seconds_bucket",
    "stage_monitor_discovery_requests_total",
    "stage_monitor_discovery_jobs",
}


def test_every_metric_family_reaches_prometheus(stack: Stack) -> None:
    poll(
        "every contract family in Prometheus",
        lambda: True if names_in_prometheus(stack) >= CONTRACT else None,
        20,
    )
    (up,) = stack.query(f'up{{job="{JOB}"}}')
    assert up["value"][1] == "1"
    (info,) = stack.query("stage_monitor_build_info")
    assert info["metric"]["version"] == __version__
    # The records the daemon was told to watch are all accounted for, by state.
    # (Builds of the project's jobs are found by discovery and carry job labels.)
    (total,) = stack.query(
        "sum(stage_monitor_records) - sum(stage_monitor_discovered_records_total)"
    )
    assert int(float(total["value"][1])) == len(stack.monitor.records)
    # Per-record series carry the simulator's record ids, and nothing else.
    ids = {
        r["metric"]["record_id"]
        for r in stack.query(
            'codearts_build_record_complete unless codearts_build_record_complete{job_id!=""}'
        )
    }
    assert ids
    assert ids <= set(stack.monitor.records)
    targets = stack.prom.api("targets")["activeTargets"]
    assert [(t["health"], t["lastError"]) for t in targets] == [("up", "")]


VARIABLE_RE = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def variable_values(stack: Stack, dashboard: dict[str, Any], job: str) -> dict[str, list[str]]:
    """Each query variable's options, asked of Prometheus the way Grafana asks."""
    out: dict[str, list[str]] = {}
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = VARIABLE_RE.match(var["definition"])
        assert m, f"variable {var['name']}: unexpected query {var['definition']!r}"
        selector = m["selector"].replace("$job", job)
        values: list[str] = stack.prom.api(f"label/{m['label']}/values", **{"match[]": selector})
        out[var["name"]] = values
    return out


def substitute(expr: str, values: dict[str, str]) -> str:
    for name in sorted(values, key=len, reverse=True):  # $record_id before $record
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


def has_finite_value(result: list[dict[str, Any]]) -> bool:
    for series in result:
        points = series.get("values") or [series["value"]]
        if any(math.isfinite(float(v)) for _, v in points):
            return True
    return False


@pytest.mark.parametrize("path", [DASHBOARD, JOBS_DASHBOARD], ids=lambda p: p.stem)
def test_every_dashboard_panel_query_returns_data(stack: Stack, path: Path) -> None:
    dashboard = load_dashboard(path)
    # Wait until stages have finished while Prometheus watched, so rates are not all zero.
    poll(
        "stages finishing under Prometheus' eyes",
        lambda: (
            True
            if stack.query(f"increase(codearts_build_stages_finished_total[{RATE_INTERVAL}]) > 0")
            else None
        ),
        30,
    )
    # ... and builds of the project's jobs have completed (the jobs dashboard's history).
    poll(
        "a discovered build completing",
        lambda: (
            True if stack.query('codearts_build_records_finished_total{job_name!=""}') else None
        ),
        60,
    )
    options = poll(
        "every variable with values",
        lambda: (
            (o if all(o.values()) else None)
            if (o := variable_values(stack, dashboard, JOB))
            else None
        ),
        20,
    )
    assert JOB in options["job"]
    # A user picks a record that has started; "All" is Grafana's allValue, ".*".
    started = {
        r["metric"]["record_id"] for r in stack.query("codearts_build_stage_duration_seconds")
    }
    record_id = sorted(set(options.get("record_id", started)) & started)[0]
    values = {
        "job_name": ".*",
        "job": JOB,
        "instance": ".*",
        "stage": ".*",
        "record_id": record_id,
        "__rate_interval": RATE_INTERVAL,
        "__range": f"{max(60, int(time.time() - stack.started) + 1)}s",
    }
    empty = []
    checked = 0
    for panel in dashboard_panels(dashboard):
        for target in panel["targets"]:
            expr = substitute(target["expr"], values)
            instant = bool(target.get("instant"))

            def answer(expr: str = expr, instant: bool = instant) -> bool | None:
                result = stack.query(expr) if instant else stack.query_range(expr)
                return True if has_finite_value(result) else None

            try:
                poll(f"data for {panel['title']!r}", answer, 10)
            except TimeoutError:
                empty.append((panel["title"], target["refId"], expr))
            checked += 1
    assert empty == []
    assert checked >= len(dashboard_panels(dashboard)) >= 7


def rule_groups(stack: Stack) -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in stack.prom.api("rules")["groups"]}


def test_the_shipped_rules_load_and_evaluate_cleanly(stack: Stack) -> None:
    shipped = load_yaml(ALERTS)
    for group in shipped["groups"]:

        def evaluated(name: str = group["name"]) -> dict[str, Any] | None:
            g = rule_groups(stack).get(name)
            if g is None or any(r["lastEvaluation"].startswith("0001") for r in g["rules"]):
                return None
            return g

        loaded = poll(f"group {group['name']} evaluated", evaluated, 10)
        assert [r["name"] for r in loaded["rules"]] == [r["alert"] for r in group["rules"]]
        for rule in loaded["rules"]:
            assert rule["health"] == "ok", rule
        # Loaded as written: the expressions and `for:` durations are the file's.
        by_name = {r["name"]: r for r in loaded["rules"]}
        for rule in group["rules"]:
            assert by_name[rule["alert"]]["duration"] == _seconds(rule["for"])


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(duration[:-1]) * units[duration[-1]]


def active_alerts(stack: Stack, name: str) -> list[dict[str, Any]]:
    return [
        a
        for a in stack.prom.api("alerts")["alerts"]
        if a["labels"]["alertname"] == name and a["labels"].get("e2e_copy") == "short-for"
    ]


def test_failing_api_fires_the_api_errors_alert(stack: Stack) -> None:
    # Healthy so far: the alert is not even pending.
    poll(
        "short-for rules evaluated",
        lambda: True if rule_groups(stack).get("codearts-stage-monitor-short-for") else None,
        10,
    )
    assert active_alerts(stack, "CodeArtsAPIErrors") == []
    # Every answer of the simulated API is now a 500 (CB.00060100, "Network busy").
    http_post_json(
        f"{stack.monitor.simulator_url}/_sim/faults", {"kind": "http_500", "count": 1_000_000}
    )

    def firing() -> list[dict[str, Any]] | None:
        alerts = [a for a in active_alerts(stack, "CodeArtsAPIErrors") if a["state"] == "firing"]
        return alerts or None

    (alert,) = poll("CodeArtsAPIErrors firing", firing, 30)
    assert alert["labels"]["job"] == JOB
    assert alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["summary"].startswith("CodeArts Build API errors:")
    # The daemon counted them as what they are, and kept running.
    polls = stack.query('stage_monitor_polls_total{outcome="server_error"} > 0')
    assert polls
    assert http_get(stack.monitor.metrics_url.replace("/metrics", "/healthz"))[0] == 200


def test_auth_failure_counter_reaches_prometheus(stack: Stack) -> None:
    _, text = http_get(stack.monitor.metrics_url)
    assert "# TYPE stage_monitor_auth_failures_total counter" in text
    # Every reason is exported from the start (at 0 here: the token is right), so
    # CodeArtsAuthFailures has a series to watch before the first failure.
    found = poll(
        "stage_monitor_auth_failures_total in Prometheus",
        lambda: stack.query(f'stage_monitor_auth_failures_total{{job="{JOB}"}}') or None,
        10,
    )
    assert {r["metric"]["reason"] for r in found} >= {"token_rejected"}
    assert {r["value"][1] for r in found} == {"0"}
