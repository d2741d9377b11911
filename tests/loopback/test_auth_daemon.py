"""Authentication in a running daemon: token expiry mid-run, wrong credentials, clock skew,
and secrets kept out of every log line, error, metric and probe answer."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

from monitor.app import Daemon
from monitor.cli import main
from monitor.codearts.auth.aksk import AkSkAuth
from monitor.domain import RecordState
from monitor.files import FileSecret
from monitor.logging import get_logger
from monitor.settings import Settings
from tests.support.loopback import (
    TOKEN,
    SimServer,
    fetch,
    log_events,
    make_settings,
    running,
    scrape,
    wait_until,
)
from tests.support.samples import series, value

DOMAIN, USER, PASSWORD = "acme", "monitor-bot", "pw-Sx9!kQ2#zL7vB4"
AK, SK = "AKSIMEXAMPLE00000001", "SKsim0example0secret0key0value0000000001"
WRONG_PASSWORD = "wrong-pw-Hq3@nV8"
WRONG_SK = "SKwrong0secret0key0value00000000000000000"


@pytest.fixture
def iam(sim: SimServer) -> SimServer:
    sim.sim.iam_users[(DOMAIN, USER)] = PASSWORD
    sim.sim.aksk[AK] = SK
    return sim


def password_settings(url: str, records: list[str], password: str, **kw: Any) -> Settings:
    return make_settings(
        url,
        records,
        auth_token=None,
        iam_username=USER,
        iam_password=SecretStr(password),
        iam_domain=DOMAIN,
        iam_endpoint=url,
        **kw,
    )


def aksk_settings(url: str, records: list[str], sk: str, **kw: Any) -> Settings:
    return make_settings(url, records, auth_token=None, ak=AK, sk=SecretStr(sk), **kw)


async def everything_a_user_sees(daemon: Daemon, logs: io.StringIO) -> str:
    """Logs, /metrics, /readyz, /healthz and every record's stored error, as one text."""
    parts = [logs.getvalue()]
    for path in ("/metrics", "/readyz", "/healthz"):
        parts.append((await fetch(daemon, path))[2])
    parts.extend(str(r.error) for r in daemon.watchlist.records.values())
    return "\n".join(parts)


async def test_token_expiring_mid_run_loses_nothing(
    iam: SimServer, log_stream: io.StringIO
) -> None:
    plans = [iam.sim.new_build(started_ago=float(i)) for i in range(30)]  # all in progress
    ids = [p.record_id for p in plans]
    settings = password_settings(iam.url, ids, PASSWORD, max_concurrency=16)
    async with running(Daemon(settings)) as d:
        recs = d.watchlist.records
        await wait_until(d, lambda: all(recs[r].polls >= 2 for r in ids))
        assert iam.sim.token_requests == 1
        before = {r: recs[r].polls for r in ids}
        assert iam.sim.expire_tokens() == 1
        await wait_until(d, lambda: all(recs[r].polls >= before[r] + 3 for r in ids))
        assert iam.sim.token_requests == 2  # one refresh for every poll that found it expired
        refused_during_run = sum(1 for r in iam.sim.requests if r.status == 401)
        assert refused_during_run >= 1  # the expiry really was noticed mid-run
        # Let every build finish; each record must reach the end the API reports.
        iam.sim.clock.advance(24 * 3600.0)
        await wait_until(d, lambda: all(recs[r].state is RecordState.COMPLETE for r in ids))
        for r in ids:
            truth = iam.sim.truth(r)["result"]["build_stages"]
            snap = recs[r].snapshot
            assert snap is not None
            assert {s.key: s.status for s in snap.stages} == {
                k: v["status"].upper() for k, v in truth.items()
            }
        samples = await scrape(d)
    assert iam.sim.token_requests == 2
    assert not value(samples, "stage_monitor_polls_total", outcome="unauthorized")
    assert sum(series(samples, "stage_monitor_auth_failures_total").values()) == 0
    assert log_events(log_stream, "auth_failed") == []
    assert log_events(log_stream, "poll_failed") == []


async def test_wrong_password_keeps_daemon_running_and_not_ready(
    iam: SimServer, log_stream: io.StringIO
) -> None:
    rid = iam.sim.new_build().record_id
    settings = password_settings(iam.url, [rid], WRONG_PASSWORD, backoff_max=0.2)
    async with running(Daemon(settings)) as d:
        await wait_until(d, lambda: d.watchlist.records[rid].polls >= 3)
        status, _, body = await fetch(d, "/readyz")
        assert status == 503
        problems = json.loads(body)["problems"]
        assert any("authentication failing (password, iam_rejected)" in p for p in problems)
        assert (await fetch(d, "/healthz"))[0] == 200  # alive: nothing a restart would fix
        samples = await scrape(d)
        seen = await everything_a_user_sees(d, log_stream)
    assert (value(samples, "stage_monitor_auth_failures_total", reason="iam_rejected") or 0) >= 3
    assert value(samples, "stage_monitor_auth_failures_total", reason="clock_skew") == 0
    failed = log_events(log_stream, "auth_failed")
    assert len(failed) == 1  # logged when it started failing, not once per poll
    assert failed[0]["reason"] == "iam_rejected"
    assert failed[0]["level"] == "error"
    assert "The username or password is wrong." in failed[0]["error"]
    assert iam.sim.token_requests == 1  # backing off: IAM locks users after repeated failures
    assert WRONG_PASSWORD not in seen
    assert PASSWORD not in seen


async def test_wrong_sk_counts_and_reports(iam: SimServer, log_stream: io.StringIO) -> None:
    ids = [iam.sim.new_build().record_id for _ in range(30)]
    settings = aksk_settings(iam.url, ids, WRONG_SK, backoff_max=0.2, max_concurrency=16)
    async with running(Daemon(settings)) as d:
        recs = d.watchlist.records
        await wait_until(d, lambda: all(recs[r].polls >= 3 for r in ids))
        status, _, body = await fetch(d, "/readyz")
        samples = await scrape(d)
        metrics_text = (await fetch(d, "/metrics"))[2]
        seen = await everything_a_user_sees(d, log_stream)
    lint = await anyio.run_process(
        ["promtool", "check", "metrics"], input=metrics_text.encode(), check=False
    )
    assert lint.returncode == 0, (lint.stdout + lint.stderr).decode()
    assert status == 503
    assert "signature_rejected" in body
    assert (
        value(samples, "stage_monitor_auth_failures_total", reason="signature_rejected") or 0
    ) >= 2
    assert [e["reason"] for e in log_events(log_stream, "auth_failed")] == ["signature_rejected"]
    assert WRONG_SK not in seen
    assert SK not in seen


async def test_clock_skew_is_named_and_recovers(iam: SimServer, log_stream: io.StringIO) -> None:
    rid = iam.sim.new_build().record_id
    settings = aksk_settings(iam.url, [rid], SK, backoff_max=0.2)
    offset = [-3600.0]
    auth = AkSkAuth(
        ak=lambda: AK, sk=lambda: SK, clock=lambda: time.time() + offset[0], retry_min=0.05
    )
    async with running(Daemon(settings, auth=auth)) as d:
        rec = d.watchlist.records[rid]
        await wait_until(d, lambda: rec.polls >= 2)
        status, _, body = await fetch(d, "/readyz")
        assert status == 503
        assert "clock_skew" in body
        shown = re.search(r"clock is ([+-]\d+) s off the gateway's", body)
        assert shown is not None
        assert abs(float(shown.group(1)) + 3600) <= 2  # the Date header has 1 s resolution
        offset[0] = 0.0  # someone fixed NTP
        await wait_until(d, lambda: rec.consecutive_errors == 0 and rec.snapshot is not None)
        status, _, body = await fetch(d, "/readyz")
        assert "authentication" not in body
        samples = await scrape(d)
    assert (value(samples, "stage_monitor_auth_failures_total", reason="clock_skew") or 0) >= 2
    events = [
        (e["event"], e["reason"])
        for e in log_events(log_stream)
        if e["event"] in ("auth_failed", "auth_recovered")
    ]
    assert events == [("auth_failed", "clock_skew"), ("auth_recovered", "clock_skew")]


async def test_iam_tokens_are_redacted_from_logs(iam: SimServer, log_stream: io.StringIO) -> None:
    rid = iam.sim.new_build().record_id
    async with running(Daemon(password_settings(iam.url, [rid], PASSWORD))) as d:
        await wait_until(d, lambda: d.watchlist.records[rid].polls >= 1)
        (token,) = iam.sim.issued
        get_logger("test").info("debug_dump", note=f"sent X-Auth-Token {token}")
    line = log_events(log_stream, "debug_dump")[0]["note"]
    assert token not in log_stream.getvalue()
    assert line == "sent X-Auth-Token ***"


SECRET_ENV = {
    "MONITOR_AUTH_TOKEN": TOKEN,
    "MONITOR_IAM_USERNAME": USER,
    "MONITOR_IAM_PASSWORD": PASSWORD,
    "MONITOR_IAM_DOMAIN": DOMAIN,
    "CLOUD_SDK_AK": AK,
    "CLOUD_SDK_SK": SK,
}


@pytest.mark.parametrize("mode", ["token", "password", "aksk"])
def test_check_config_masks_every_secret(
    mode: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, val in SECRET_ENV.items():
        monkeypatch.setenv(name, val)
    monkeypatch.setenv("MONITOR_AUTH_MODE", mode)
    assert main(["check-config"]) == 0
    out, err = capsys.readouterr()
    shown = json.loads(out)
    assert shown["auth_mode"] == mode
    assert shown["ak"] == AK  # the access key is an identifier, not a secret
    for secret in (TOKEN, PASSWORD, SK):
        assert secret not in out + err
    assert shown["sk"] == shown["iam_password"] == shown["auth_token"] == "********"


def test_two_modes_without_auth_mode_is_an_error_naming_both(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MONITOR_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("CLOUD_SDK_AK", AK)
    monkeypatch.setenv("CLOUD_SDK_SK", SK)
    assert main(["check-config"]) == 2
    out, err = capsys.readouterr()
    assert "token (MONITOR_AUTH_TOKEN)" in err
    assert "aksk (MONITOR_AK/CLOUD_SDK_AK, MONITOR_SK/CLOUD_SDK_SK)" in err
    assert "MONITOR_AUTH_MODE" in err
    for secret in (TOKEN, SK):
        assert secret not in out + err


async def test_rotated_sk_file_recovers(
    iam: SimServer, log_stream: io.StringIO, tmp_path: Path
) -> None:
    ids = [iam.sim.new_build().record_id for _ in range(10)]
    kubelet_write(tmp_path, "v1", {"sk": WRONG_SK})
    settings = aksk_settings(iam.url, ids, WRONG_SK, backoff_max=0.2)
    auth = AkSkAuth(ak=lambda: AK, sk=FileSecret(tmp_path / "sk"), retry_min=0.05)
    async with running(Daemon(settings, auth=auth)) as d:
        recs = d.watchlist.records
        await wait_until(d, lambda: all(recs[r].polls >= 1 for r in ids))
        assert (await fetch(d, "/readyz"))[0] == 503
        kubelet_write(tmp_path, "v2", {"sk": SK})
        await wait_until(
            d,
            lambda: all(
                recs[r].snapshot is not None and not recs[r].consecutive_errors for r in ids
            ),
        )
        problems = json.loads((await fetch(d, "/readyz"))[2]).get("problems", [])
    assert not any("authentication" in p for p in problems)
    assert [e["event"] for e in log_events(log_stream) if e["event"].startswith("auth_")] == [
        "auth_failed",
        "auth_recovered",
    ]
    assert iam.sim.aksk_refusals[AK] == 0
    assert SK not in log_stream.getvalue()
    assert WRONG_SK not in log_stream.getvalue()


def kubelet_write(secret_dir: Path, version: str, files: dict[str, str]) -> None:
    """Update a mounted Secret the way kubelet does: a new directory, then a symlink swap."""
    target = secret_dir / version
    target.mkdir()
    for name, content in files.items():
        (target / name).write_text(content)
        if not (secret_dir / name).is_symlink():
            (secret_dir / name).symlink_to(Path("..data") / name)
    (secret_dir / "..data_tmp").symlink_to(version)
    (secret_dir / "..data_tmp").rename(secret_dir / "..data")


async def test_rotated_token_secret_is_used_without_restart(
    iam: SimServer, log_stream: io.StringIO, tmp_path: Path
) -> None:
    new_token = "rotated-token-Vb6nM1qA"
    kubelet_write(tmp_path, "v1", {"token": TOKEN + "\n"})
    plan = iam.sim.new_build()
    settings = make_settings(
        iam.url, [plan.record_id], auth_token=None, auth_token_file=tmp_path / "token"
    )
    async with running(Daemon(settings)) as d:
        rec = d.watchlist.records[plan.record_id]
        await wait_until(d, lambda: rec.polls >= 1 and rec.consecutive_errors == 0)
        kubelet_write(tmp_path, "v2", {"token": new_token + "\n"})
        iam.sim.tokens = {new_token}  # and the old token is revoked
        polls = rec.polls
        await wait_until(d, lambda: rec.polls >= polls + 3 and rec.consecutive_errors == 0)
        get_logger("test").info("debug_dump", note=f"now using {new_token}")
    assert new_token not in log_stream.getvalue()  # the rotated value is redacted too
