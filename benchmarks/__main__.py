"""`python -m benchmarks`: run every case, print the table, write the JSON.

python -m benchmarks                   # the full suite (a few minutes), as `make bench`
python -m benchmarks --smoke --out X   # seconds, tiny sizes, no targets (the pytest smoke run)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import discovery, latency, traces
from benchmarks.cluster import case_cluster
from benchmarks.common import ROOT, median, median_of_runs, run_json, simulator_process
from monitor.tracking.scheduler import COALESCE_MAX, COALESCE_SHARE

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "latest.json"
CASES = (
    "cpu",
    "scale",
    "scrape",
    "latency",
    "status_page",
    "traces",
    "discovery",
    "cluster",
    "history",
)
# "The release before" in the history case: the commit the tombstones change branched
# from, run from a `git archive` of it with the same interpreter (override: --baseline).
HISTORY_BASELINE = "216d9f7"


@dataclass(frozen=True)
class Plan:
    """Sizes of every case; `full()` is judged against the targets, `smoke()` proves the harness."""

    runs: int
    cpu_rate: float
    cpu_records: int
    cpu_concurrency: int
    cpu_warmup: float
    cpu_window: float
    scale_records: int
    scale_interval: float
    scale_warmup: float
    scale_window: float
    scale_scrape_every: float
    scrape_sizes: tuple[int, ...]
    scrape_repeat: int
    latency_records: int
    latency_interval: float
    latency_rounds: int
    latency_step: float
    latency_scrape_period: float
    status_records: int = 2000
    status_repeat: int = 15
    status_poll_records: int = 1000
    status_interval: float = 10.0
    status_window: float = 10.0
    traces_records: int = 200
    traces_speed: float = 100.0  # simulated seconds per real second
    traces_interval: float = 0.15  # real seconds: 15 s of a real build at that speed
    history_first: int = 2000
    history_second: int = 10000
    history_baseline: bool = True  # also run the release before, side by side

    @classmethod
    def full(cls, runs: int) -> Plan:
        return cls(
            runs=runs,
            cpu_rate=200.0,
            cpu_records=2000,
            cpu_concurrency=16,
            cpu_warmup=1.5,
            cpu_window=6.0,
            scale_records=2000,
            scale_interval=10.0,
            scale_warmup=2.0,
            scale_window=20.0,
            scale_scrape_every=15.0,
            scrape_sizes=(100, 1000, 5000),
            scrape_repeat=7,
            latency_records=100,
            latency_interval=1.0,
            latency_rounds=10,
            latency_step=5.0,
            latency_scrape_period=0.01,
        )

    @classmethod
    def smoke(cls) -> Plan:
        return cls(
            runs=1,
            cpu_rate=40.0,
            cpu_records=20,
            cpu_concurrency=4,
            cpu_warmup=0.6,
            cpu_window=1.0,
            scale_records=60,
            scale_interval=0.5,
            scale_warmup=0.2,
            scale_window=1.0,
            scale_scrape_every=0.3,
            scrape_sizes=(10, 30),
            scrape_repeat=2,
            latency_records=10,
            latency_interval=0.3,
            latency_rounds=2,
            latency_step=5.0,
            latency_scrape_period=0.01,
            status_records=50,
            status_repeat=2,
            status_poll_records=20,
            status_interval=0.5,
            status_window=0.5,
            traces_records=20,
            traces_speed=1000.0,
            traces_interval=0.015,
            history_first=20,
            history_second=50,
            history_baseline=False,
        )


def sdk_installed() -> bool:
    return importlib.util.find_spec("huaweicloudsdkcodeartsbuild") is not None


# --- the cases -------------------------------------------------------------------------------


def daemon_tick(interval: float) -> float:
    """The daemon's dispatcher grid at this interval (see monitor/tracking/scheduler.py)."""
    return min(COALESCE_MAX, interval * COALESCE_SHARE)


def case_cpu(plan: Plan) -> dict[str, Any]:
    interval = plan.cpu_records / plan.cpu_rate
    grid = daemon_tick(interval)
    pollers = ["bare", "bare_grid", "daemon"] + (["sdk"] if sdk_installed() else [])
    runs: list[dict[str, Any]] = []
    with (
        simulator_process(
            records=plan.cpu_records, duration_scale=40.0, accept_any_auth=True
        ) as sim,
        tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh,
    ):
        json.dump(sim.records, fh)
        fh.close()
        try:
            for i in range(plan.runs):
                order = pollers[i % len(pollers) :] + pollers[: i % len(pollers)]
                run: dict[str, Any] = {}
                for poller in order:
                    # The daemon spreads its first polls over one interval: measure after it.
                    warmup = plan.cpu_warmup + (interval if poller == "daemon" else 0.0)
                    extra = ["--grid", str(grid)] if poller == "bare_grid" else []
                    run[poller] = run_json(
                        "benchmarks.cpu_poll",
                        "bare" if poller == "bare_grid" else poller,
                        "--url",
                        sim.url,
                        "--records-file",
                        fh.name,
                        "--rate",
                        str(plan.cpu_rate),
                        "--concurrency",
                        str(plan.cpu_concurrency),
                        "--warmup",
                        str(warmup),
                        "--window",
                        str(plan.cpu_window),
                        *extra,
                    )
                a = run["daemon"]["cpu_per_poll_us"]
                run["a_over_b"] = a / run["bare"]["cpu_per_poll_us"]
                run["a_over_b_grid"] = a / run["bare_grid"]["cpu_per_poll_us"]
                run["c_over_a"] = run["sdk"]["cpu_per_poll_us"] / a if "sdk" in run else None
                run["c_over_b"] = (
                    run["sdk"]["cpu_per_poll_us"] / run["bare"]["cpu_per_poll_us"]
                    if "sdk" in run
                    else None
                )
                runs.append(run)
        finally:
            os.unlink(fh.name)

    def us(poller: str) -> float:
        return median([r[poller]["cpu_per_poll_us"] for r in runs if poller in r])

    return {
        "rate_per_second": plan.cpu_rate,
        "records": plan.cpu_records,
        "interval_seconds": interval,
        "grid_seconds": grid,
        "concurrency": plan.cpu_concurrency,
        "window_seconds": plan.cpu_window,
        "sdk_installed": sdk_installed(),
        "runs": runs,
        "median": {
            "daemon_us": us("daemon"),
            "bare_us": us("bare"),
            "bare_grid_us": us("bare_grid"),
            "sdk_us": us("sdk"),
            "a_over_b": median_of_runs(runs, "a_over_b"),
            "a_over_b_grid": median_of_runs(runs, "a_over_b_grid"),
            "c_over_a": median_of_runs(runs, "c_over_a"),
            "c_over_b": median_of_runs(runs, "c_over_b"),
        },
    }


def case_scale(plan: Plan) -> dict[str, Any]:
    runs = []
    with (
        simulator_process(records=plan.scale_records, duration_scale=40.0) as sim,
        tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh,
    ):
        json.dump(sim.records, fh)
        fh.close()
        try:
            for _ in range(plan.runs):
                runs.append(
                    run_json(
                        "benchmarks.scale",
                        "--url",
                        sim.url,
                        "--records-file",
                        fh.name,
                        "--interval",
                        str(plan.scale_interval),
                        "--warmup",
                        str(plan.scale_warmup),
                        "--window",
                        str(plan.scale_window),
                        "--scrape-every",
                        str(plan.scale_scrape_every),
                    )
                )
        finally:
            os.unlink(fh.name)
    keys = (
        "delay_p50_seconds",
        "delay_p99_seconds",
        "rss_bytes",
        "rss_peak_bytes",
        "cpu_share",
        "polls_per_second",
    )
    return {
        "records": plan.scale_records,
        "interval_seconds": plan.scale_interval,
        "runs": runs,
        "median": {k: median_of_runs(runs, k) for k in keys},
    }


def case_scrape(plan: Plan) -> dict[str, Any]:
    sizes = ",".join(str(n) for n in plan.scrape_sizes)
    result = run_json(
        "benchmarks.scrape", "--records", sizes, "--repeat", str(plan.scrape_repeat), "--check"
    )
    result["repeat"] = plan.scrape_repeat
    return result


def case_traces(plan: Plan) -> dict[str, Any]:
    runs = []
    for i in range(plan.runs):
        with (
            simulator_process(records=0, speed=plan.traces_speed, seed=i + 1) as sim,
            traces.receiver_process() as receiver,
        ):
            runs.append(
                run_json(
                    "benchmarks.traces",
                    "--url",
                    sim.url,
                    "--receiver",
                    receiver,
                    "--builds",
                    str(plan.traces_records),
                    "--interval",
                    str(plan.traces_interval),
                )
            )
    keys = (
        "poll_cpu_per_build_us",
        "export_cpu_per_build_us",
        "export_over_poll",
        "single_cpu_per_build_us",
        "single_over_poll",
    )
    return {
        "records": plan.traces_records,
        "speed": plan.traces_speed,
        "interval_seconds": plan.traces_interval,
        "runs": runs,
        "median": {k: median_of_runs(runs, k) for k in (*keys, "polls_per_build")},
    }


def case_latency(plan: Plan) -> dict[str, Any]:
    runs = [
        latency.run_once(
            plan.latency_records,
            plan.latency_interval,
            plan.latency_rounds,
            plan.latency_step,
            plan.latency_scrape_period,
            seed=i + 1,
        )
        for i in range(plan.runs)
    ]
    return {
        "interval_seconds": plan.latency_interval,
        "scrape_period_seconds": plan.latency_scrape_period,
        "runs": runs,
        "median": {
            k: median_of_runs(runs, k)
            for k in ("latency_p50_seconds", "latency_p99_seconds", "latency_max_seconds")
        },
    }


def case_status_page(plan: Plan) -> dict[str, Any]:
    with (
        simulator_process(records=plan.status_poll_records, duration_scale=40.0) as sim,
        tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh,
    ):
        json.dump(sim.records, fh)
        fh.close()
        try:
            return run_json(
                "benchmarks.status_page",
                "--records",
                str(plan.status_records),
                "--repeat",
                str(plan.status_repeat),
                "--url",
                sim.url,
                "--records-file",
                fh.name,
                "--interval",
                str(plan.status_interval),
                "--window",
                str(plan.status_window),
            )
        finally:
            os.unlink(fh.name)


def _baseline_tree(commit: str, into: Path) -> Path:
    """The release before, as files: `git archive` of its commit."""
    archive = subprocess.run(  # noqa: S603
        ["git", "archive", commit],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    subprocess.run(  # noqa: S603
        ["tar", "-x", "-C", str(into)],  # noqa: S607
        input=archive.stdout,
        check=True,
    )
    return into


def case_history(plan: Plan, baseline: str = HISTORY_BASELINE) -> dict[str, Any]:
    total = plan.history_first + plan.history_second
    with (
        simulator_process(records=total, finished=True) as sim,
        tempfile.TemporaryDirectory(prefix="bench-baseline-") as old,
        tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh,
    ):
        json.dump(sim.records, fh)
        fh.close()
        trees = ["--tree", f"ours={ROOT}"]
        if plan.history_baseline:
            trees += ["--tree", f"before={_baseline_tree(baseline, Path(old))}"]
        try:
            result = run_json(
                "benchmarks.history",
                "--url",
                sim.url,
                "--records-file",
                fh.name,
                "--first",
                str(plan.history_first),
                *trees,
                timeout=1800,
            )
        finally:
            os.unlink(fh.name)
    return {
        "first": plan.history_first,
        "second": plan.history_second,
        "baseline": baseline if plan.history_baseline else None,
        "trees": result,
    }


# --- the table -------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str) -> str:
    if value is None or value != value:  # None or NaN
        return "n/a"
    if unit == "us":
        return f"{value:.0f} µs"
    if unit == "ms":
        return f"{value * 1000:.1f} ms"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "MB":
        return f"{value / 1e6:.0f} MB"
    if unit == "%":
        return f"{value * 100:.1f} %"
    if unit == "KB":
        return f"{value / 1e3:.0f} KB"
    if unit == "B":
        return f"{value:.0f} B"
    return f"{value:g}"


def _verdict(value: float | None, ok: bool | None) -> str:
    if ok is None or value is None or value != value:
        return ""
    return "holds" if ok else "MISSED"


def case_discovery(plan: Plan) -> dict[str, Any]:
    jobs, rounds = (50, 2) if plan.runs == 1 and plan.cpu_records < 1000 else (500, 5)
    return discovery.run_once(jobs=jobs, active=5, rounds=rounds)


def table_rows(results: dict[str, Any], smoke: bool) -> list[tuple[str, str, str, str, str]]:
    """(case, figure, value, target, verdict) rows; no verdicts in a smoke run."""
    rows: list[tuple[str, str, str, str, str]] = []

    def row(
        case: str, figure: str, value: Any, unit: str, target: str = "", ok: Any = None
    ) -> None:
        rows.append((case, figure, _fmt(value, unit), target, "" if smoke else _verdict(value, ok)))

    if "cpu" in results:
        m = results["cpu"]["median"]
        c = results["cpu"]
        case = (
            f"1 CPU/poll ({c['records']} records, {c['interval_seconds']:g} s = "
            f"{c['rate_per_second']:g}/s, {c['concurrency']} concurrent)"
        )
        sdk = c["sdk_installed"]
        row(case, "(a) daemon", m["daemon_us"], "us")
        row(case, "(b) bare aiohttp + json.loads", m["bare_us"], "us")
        row(
            case,
            f"(b') same, on the daemon's {c['grid_seconds'] * 1000:g} ms grid",
            m["bare_grid_us"],
            "us",
        )
        row(case, "(c) official SDK, thread pool", m["sdk_us"] if sdk else None, "us")
        row(case, "a/b", m["a_over_b"], "x", "≤ 1.5", m["a_over_b"] <= 1.5)
        row(case, "a/b'", m["a_over_b_grid"], "x")
        ca = m["c_over_a"] if sdk else None
        row(case, "c/a", ca, "x", "≥ 5", None if ca is None else ca >= 5)
        row(case, "c/b", m["c_over_b"] if sdk else None, "x")
    if "discovery" in results:
        d = results["discovery"]
        case = f"7 discovery ({d['jobs']} jobs, {d['active_per_round']} active a round)"
        worst = d["projects"]["max_requests_per_round"]
        row(case, "MONITOR_PROJECTS requests/round (max)", worst, "", "≤ 20", worst <= 20)
        row(case, "MONITOR_JOBS requests/round (max)", d["per_job"]["max_requests_per_round"], "")
        row(case, "per-job / projects", d["ratio_per_job_over_projects"], "x")
        missed = d["projects"]["builds_missed"] + d["per_job"]["builds_missed"]
        row(case, "builds missed", missed, "", "0", missed == 0)
    if "scale" in results:
        m = results["scale"]["median"]
        s = results["scale"]
        case = f"2 scale ({s['records']} records, {s['interval_seconds']:g} s)"
        row(case, "poll delay p50", m["delay_p50_seconds"], "ms")
        row(
            case,
            "poll delay p99",
            m["delay_p99_seconds"],
            "ms",
            "< 1 s",
            m["delay_p99_seconds"] < 1,
        )
        row(case, "RSS", m["rss_bytes"], "MB", "< 200 MB", m["rss_peak_bytes"] < 200e6)
        row(case, "RSS peak", m["rss_peak_bytes"], "MB")
        row(case, "CPU share (one core)", m["cpu_share"], "%")
    if "scrape" in results:
        for size in results["scrape"]["sizes"]:
            n = size["records"]
            case = f"3 scrape ({n} records x 8 stages)"
            target = n == 1000
            row(case, "ours, every record changed", size["ours_changed_seconds"], "ms")
            row(case, "ours, nothing changed", size["ours_unchanged_seconds"], "ms")
            row(case, "generate_latest baseline", size["baseline_seconds"], "ms")
            row(
                case,
                "speed-up (changed)",
                size["speedup_changed"],
                "x",
                "≥ 10" if target else "",
                size["speedup_changed"] >= 10 if target else None,
            )
            row(case, "speed-up (unchanged)", size["speedup_unchanged"], "x")
            row(case, "body size (ours / baseline)", size["ours_bytes"], "KB")
            rows[-1] = (
                *rows[-1][:2],
                f"{size['ours_bytes'] / 1e3:.0f} / {size['baseline_bytes'] / 1e3:.0f} KB",
                *rows[-1][3:],
            )
    if "latency" in results:
        m = results["latency"]["median"]
        interval = results["latency"]["interval_seconds"]
        case = f"4 detection latency ({interval:g} s interval)"
        row(case, "p50", m["latency_p50_seconds"], "ms")
        limit = interval + 0.1
        row(
            case,
            "p99",
            m["latency_p99_seconds"],
            "ms",
            f"≤ {limit * 1000:.0f} ms",
            m["latency_p99_seconds"] <= limit,
        )
    if "status_page" in results:
        r = results["status_page"]["render"]
        case = f"5 status page ({r['records']} active records x 8 stages)"
        capped = r["capped"]["changed_median_seconds"]
        n_rows = r["capped"]["rows"]
        row(case, f"/ render, {n_rows} rows, all changed", capped, "ms", "< 100 ms", capped < 0.1)
        row(case, "the same, CPU time", r["capped"]["changed_cpu_median_seconds"], "ms")
        row(
            case,
            f"/ render, {n_rows} rows, unchanged",
            r["capped"]["unchanged_median_seconds"],
            "ms",
        )
        row(
            case,
            f"/ render, all {r['all']['rows']} rows, all changed",
            r["all"]["changed_median_seconds"],
            "ms",
        )
        row(case, f"/ body size, {n_rows} rows", r["capped"]["body_bytes"], "KB")
        row(case, "/records/{id} render", r["record_page"]["median_seconds"], "ms")
        p = results["status_page"]["polling"]
        case = (
            f"5 polling while / loads ({p['records']} records, {p['interval_seconds']:g} s, "
            f"{p['window_seconds']:g} s windows)"
        )
        row(case, "polls/s, no page loads", p["quiet"]["polls_per_second"], "")
        row(case, "polls/s, / loaded back to back", p["loaded"]["polls_per_second"], "")
        ratio = p["polls_ratio"]
        row(case, "polls/s ratio (loaded / quiet)", ratio, "x", "≥ 0.95", ratio >= 0.95)
        row(case, "poll delay p99, no page loads", p["quiet"]["delay_p99_seconds"], "ms")
        loaded_p99 = p["loaded"]["delay_p99_seconds"]
        row(case, "poll delay p99, while loading", loaded_p99, "ms", "< 1 s", loaded_p99 < 1)
        row(case, "page loads in the window", p["loaded"]["page_loads"], "")
        row(case, "page load p50 over HTTP", p["loaded"]["page_p50_seconds"], "ms")
    if "traces" in results:
        m = results["traces"]["median"]
        t = results["traces"]
        case = (
            f"6 traces ({t['records']} builds, polled every "
            f"{t['interval_seconds'] * t['speed']:g} s to completion)"
        )
        row(case, "polling, CPU per build", m["poll_cpu_per_build_us"], "us")
        row(case, "trace export, CPU per build (batched)", m["export_cpu_per_build_us"], "us")
        row(case, "same, one request per build", m["single_cpu_per_build_us"], "us")
        row(case, "polls per build", round(m["polls_per_build"], 1), "")
        row(case, "export / polling (batched)", m["export_over_poll"], "%")
        ratio = m["single_over_poll"]
        row(case, "export / polling (one request per build)", ratio, "%", "< 10 %", ratio < 0.10)
    if "cluster" in results:
        c = results["cluster"]
        case = (
            f"8 cluster (1 replica, {c['single']['records']} records vs "
            f"{len(c['replicas'])} replicas, {c['records']} records; {c['interval_seconds']:g} s)"
        )
        row(case, "CPU/poll, single replica", c["single"]["cpu_per_poll_us"], "us")
        for i, r in enumerate(c["replicas"]):
            row(case, f"CPU/poll, replica {i + 1} of 3", r["cpu_per_poll_us"], "us")
        ratio = c["cpu_ratio_worst"]
        row(case, "worst replica / single", ratio, "x", "≤ 1.2", ratio <= 1.2)
        cmds = c["redis_commands_per_poll"]
        row(case, "Redis commands per poll", cmds, "x", "≤ 3", cmds <= 3)
        row(case, "Redis round trips per poll (replicas' count)", c["round_trips_per_poll"], "x")
        target = c["takeover_target_seconds"]
        took = c["takeover_seconds"]
        row(case, "takeover after kill -9", took, "ms", f"≤ {target:g} s", took <= target)
    if "history" in results:
        h = results["history"]
        for name, label in (("ours", "ours"), ("before", f"release before ({h['baseline']})")):
            t = h["trees"].get(name)
            if t is None:
                continue
            first, second = t["first"], t["second"]
            case = f"9 history, {label} ({h['first']} then +{h['second']} finished records)"
            ours = name == "ours"
            rss, state = t["rss_per_record_bytes"], t["state_per_record_bytes"]
            row(case, "RSS growth per record", rss, "B", "≤ 600 B" if ours else "",
                rss <= 600 if ours else None)  # fmt: skip
            row(case, "state-file growth per record", state, "B", "≤ 400 B" if ours else "",
                state <= 400 if ours else None)  # fmt: skip
            s1, s2 = first["scrape_seconds"], second["scrape_seconds"]
            row(case, f"scrape, no active record, after {h['first']}", s1, "ms")
            limit = 1.5 * s1 + 0.003
            row(case, f"scrape, after {h['first'] + h['second']}", s2, "ms",
                "≤ 1.5x (+3 ms)" if ours else "", s2 <= limit if ours else None)  # fmt: skip
            r1, r2 = first["restart_seconds"], second["restart_seconds"]
            row(case, f"restart to /readyz, after {h['first']}", r1, "ms", "≤ 5 s" if ours else "",
                r1 <= 5 if ours else None)  # fmt: skip
            row(case, f"restart to /readyz, after {h['first'] + h['second']}", r2, "ms",
                "≤ 5 s" if ours else "", r2 <= 5 if ours else None)  # fmt: skip
            row(case, "restart ratio (after / before the 10,000)", t["restart_ratio"], "x",
                "≤ 1.5" if ours else "", t["restart_ratio"] <= 1.5 if ours else None)  # fmt: skip
    return rows


def render_table(rows: list[tuple[str, str, str, str, str]]) -> str:
    header = ("case", "figure", "median", "target", "verdict")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    last_case = None
    for r in rows:
        cells = list(r)
        if r[0] == last_case:
            cells[0] = ""
        last_case = r[0]
        lines.append(
            "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"
        )
    return "\n".join(lines)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def _cluster(plan: Plan, *, smoke: bool) -> dict[str, Any]:
    return case_cluster(smoke)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, seconds; no targets")
    p.add_argument("--runs", type=int, default=3, help="repeated runs per case (median reported)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    p.add_argument("--only", default=",".join(CASES), help=f"comma-separated: {','.join(CASES)}")
    p.add_argument(
        "--baseline",
        default=HISTORY_BASELINE,
        help="commit of the release before, for the history case",
    )
    args = p.parse_args(argv)
    plan = Plan.smoke() if args.smoke else Plan.full(args.runs)
    wanted = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = set(wanted) - set(CASES)
    if unknown:
        p.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    runners: dict[str, Callable[[Plan], dict[str, Any]]] = {
        "cpu": case_cpu,
        "scale": case_scale,
        "scrape": case_scrape,
        "latency": case_latency,
        "status_page": case_status_page,
        "traces": case_traces,
        "discovery": case_discovery,
        "cluster": partial(_cluster, smoke=args.smoke),
        "history": partial(case_history, baseline=args.baseline),
    }
    results: dict[str, Any] = {}
    started = time.monotonic()
    for case in wanted:
        t = time.monotonic()
        print(f"running case {case} ...", file=sys.stderr, flush=True)
        results[case] = runners[case](plan)
        results[case]["elapsed_seconds"] = round(time.monotonic() - t, 1)
    rows = table_rows(results, args.smoke)
    table = render_table(rows)
    print(table)
    if "cpu" in results and not results["cpu"]["sdk_installed"]:
        print("\n(c) needs the official SDK: pip install '.[bench]' (make bench does it)")
    document = {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": _git_commit(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "smoke": args.smoke,
            "runs": plan.runs,
            "elapsed_seconds": round(time.monotonic() - started, 1),
        },
        "plan": plan.__dict__,
        "table": [
            dict(zip(("case", "figure", "median", "target", "verdict"), r, strict=True))
            for r in rows
        ],
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
