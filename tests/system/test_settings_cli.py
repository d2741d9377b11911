"""Settings sources and the command line, as an operator meets them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from monitor.settings import ConfigError, load_settings
from tests.support.loopback import TOKEN, SimServer

RID = "94baa8ec-fd3f-4cae-81af-b24385a7220f"
SECRET = "s3cr3t-Token-For-Tests-0042"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(f'poll_interval = 30\nregion = "ap-southeast-3"\nrecords = ["{RID}"]\n')
    monkeypatch.setenv("MONITOR_AUTH_TOKEN", SECRET)
    monkeypatch.setenv("MONITOR_POLL_INTERVAL", "7.5")
    s = load_settings(cfg)
    assert s.poll_interval == 7.5  # env
    assert s.region == "ap-southeast-3"  # file
    assert s.records == [RID]
    assert s.endpoint_url == "https://cloudbuild-ext.ap-southeast-3.myhuaweicloud.com"


def test_comma_separated_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_AUTH_TOKEN", SECRET)
    monkeypatch.setenv("MONITOR_RECORDS", f" {RID} ,{RID}")
    monkeypatch.setenv("MONITOR_TERMINAL_STATUSES", "success, Failure ,timeout")
    s = load_settings()
    assert s.records == [RID]
    assert s.terminal_statuses == {"SUCCESS", "FAILURE", "TIMEOUT"}


def test_every_error_is_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text('poll_interval = -1\nunknown_key = 3\nrecords = ["nope"]\n')
    monkeypatch.setenv("MONITOR_AUTH_TOKEN", SECRET)
    monkeypatch.setenv("MONITOR_PORT", "99999")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    text = "\n".join(err.value.errors)
    for name in ("poll_interval", "unknown_key", "records", "port"):
        assert name in text


def test_example_config_documents_every_setting() -> None:
    from monitor.settings import Settings

    example = (Path(__file__).parents[2] / "config" / "monitor.example.toml").read_text()
    missing = [n for n in Settings.model_fields if f"{n} =" not in example]
    assert missing == []


def test_check_config_masks_secrets() -> None:
    proc = _cli("check-config", env={"MONITOR_AUTH_TOKEN": SECRET, "MONITOR_RECORDS": RID})
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["auth_token"] == "********"
    assert shown["records"] == [RID]
    assert SECRET not in proc.stdout + proc.stderr


def test_check_config_exits_2_on_bad_config_without_echoing_values(tmp_path: Path) -> None:
    proc = _cli(
        "check-config",
        env={
            "MONITOR_AUTH_TOKEN": SECRET,
            "MONITOR_MAX_CONCURRENCY": "zero",
            "MONITOR_LOG_FORMAT": SECRET,
        },
    )
    assert proc.returncode == 2
    assert "max_concurrency" in proc.stderr and "log_format" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr

    broken = tmp_path / "broken.toml"
    broken.write_text("poll_interval = [\n")
    proc = _cli("--config", str(broken), "check-config", env={"MONITOR_AUTH_TOKEN": SECRET})
    assert proc.returncode == 2 and "invalid TOML" in proc.stderr


def test_an_invalid_job_pattern_exits_2_naming_the_setting() -> None:
    proc = _cli(
        "check-config",
        env={"MONITOR_AUTH_TOKEN": SECRET, "MONITOR_JOB_EXCLUDE": "tmp-(.*"},
    )
    assert proc.returncode == 2
    assert "MONITOR_JOB_EXCLUDE" in proc.stderr and "regular expression" in proc.stderr
    proc = _cli(
        "check-config",
        env={"MONITOR_AUTH_TOKEN": SECRET, "MONITOR_PROJECTS": "not-a-project"},
    )
    assert proc.returncode == 2 and "MONITOR_PROJECTS" in proc.stderr


def test_check_config_without_credentials_says_what_to_set() -> None:
    proc = _cli("check-config")
    assert proc.returncode == 2 and "MONITOR_AUTH_TOKEN" in proc.stderr


async def _watch(sim: SimServer, *ids: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update(MONITOR_ENDPOINT=sim.url, MONITOR_AUTH_TOKEN=TOKEN, MONITOR_POLL_INTERVAL="0.05")
    return await anyio.run_process(
        [sys.executable, "-m", "monitor", "watch", *ids], env=env, check=False
    )


async def test_watch_exits_0_when_every_stage_succeeded(sim: SimServer) -> None:
    plan = sim.sim.new_build(started_ago=100_000, fate="SUCCESS")
    proc = await _watch(sim, plan.record_id)
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr
    assert f"{plan.record_id} finished: SUCCESS" in out
    assert out.count("-> SUCCESS") == len(plan.stages)


async def test_watch_exits_1_on_failure_and_2_on_bad_usage(sim: SimServer) -> None:
    ok = sim.sim.new_build(started_ago=100_000, fate="SUCCESS")
    failed = sim.sim.new_build(started_ago=100_000, fate="FAILURE")
    proc = await _watch(sim, ok.record_id, failed.record_id)
    assert proc.returncode == 1
    assert f"{failed.record_id} finished: FAILURE" in proc.stdout.decode()
    proc = await _watch(sim, "not-a-record")
    assert proc.returncode == 2 and b"not a record id" in proc.stderr
