"""The benchmark harness runs end to end (tiny sizes, seconds); its numbers are not judged here."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import aiohttp

from monitor.simulator import Simulator, serve

ROOT = Path(__file__).resolve().parents[2]
FIGURES = (
    "(a) daemon",
    "(b) bare aiohttp + json.loads",
    "a/b'",
    "c/b",
    "(c) official SDK, thread pool",
    "a/b",
    "c/a",
    "poll delay p50",
    "poll delay p99",
    "RSS",
    "CPU share",
    "ours, every record changed",
    "generate_latest baseline",
    "speed-up (changed)",
    "body size (ours / baseline)",
    "p50",
    "polling, CPU per build",
    "export / polling (one request per build)",
    "p99",
    "/ render, 50 rows, all changed",
    "polls/s ratio (loaded / quiet)",
    "poll delay p99, while loading",
)


def test_smoke_run_prints_every_figure_and_writes_the_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for figure in FIGURES:
        assert f"| {figure} " in proc.stdout, figure
    assert "MISSED" not in proc.stdout  # no verdicts in a smoke run
    assert "holds" not in proc.stdout

    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["meta"]["smoke"] is True
    results = doc["results"]
    cpu_run = results["cpu"]["runs"][0]
    for poller in ("daemon", "bare", "bare_grid"):
        assert cpu_run[poller]["polls"] > 0, cpu_run[poller]
        assert cpu_run[poller]["errors"] == 0, cpu_run[poller]
    if importlib.util.find_spec("huaweicloudsdkcodeartsbuild") is not None:
        assert cpu_run["sdk"]["polls"] > 0, cpu_run["sdk"]
        assert cpu_run["sdk"]["errors"] == 0, cpu_run["sdk"]
    else:
        assert "needs the official SDK" in proc.stdout
    scale_run = results["scale"]["runs"][0]
    assert scale_run["polls"] > 0
    assert scale_run["delays_measured"] > 0
    assert scale_run["active_at_end"] == scale_run["records"]
    # Ours and the generate_latest baseline expose exactly the same samples.
    assert all(size["equivalent"] for size in results["scrape"]["sizes"])
    latency_run = results["latency"]["runs"][0]
    assert latency_run["changes"] > 0
    assert latency_run["missed"] == 0
    traces_run = results["traces"]["runs"][0]
    assert traces_run["delivered"] == traces_run["builds"] > 0
    assert traces_run["polls_per_build"] > 1  # each build was polled from its start


async def test_simulator_benchmark_mode_accepts_any_credentials_and_default_mode_does_not() -> None:
    signed = {"Authorization": "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature=00"}
    for accept_any, expected in ((False, 401), (True, 200)):
        sim = Simulator(seed=1, tokens={"the-token"}, accept_any_auth=accept_any)
        plan = sim.new_build()
        runner, port = await serve(sim, "127.0.0.1", 0)
        try:
            url = f"http://127.0.0.1:{port}/v1/record/{plan.record_id}/full-stages"
            async with aiohttp.ClientSession() as session:
                async with session.get(url, headers=signed) as resp:
                    assert resp.status == expected
                async with session.get(url) as resp:  # no credentials at all: always refused
                    assert resp.status == 401
        finally:
            await runner.cleanup()
