"""The status page in a real browser: Debian's chromium, headless, against a daemon watching
the simulator. The DOM chromium built (--dump-dom) is what a user sees; the screenshot
(build/status-page.png) is for a person to look at."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import anyio
import pytest

from monitor.app import Daemon
from tests.support.html import Element, parse_html
from tests.support.loopback import SimServer, make_settings, running, wait_until
from tests.support.status import truth_stages, with_display_name

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "build" / "status-page.png"
RECORD_SCREENSHOT = ROOT / "build" / "status-record.png"
EVIL = "<img src=x onerror=alert(1)>"
EVIL_LABEL = "<script>document.title='pwned'</script>"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
)


def chromium_binary() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("the `chromium` binary is needed: apt-get install chromium (make test does)")
    return path


async def chromium(url: str, *args: str) -> tuple[str, str]:
    """Run headless chromium on `url` with a fresh profile; returns (stdout, stderr)."""
    with tempfile.TemporaryDirectory(prefix="status-chromium-") as profile:
        cmd = [chromium_binary(), *FLAGS, f"--user-data-dir={profile}", *args, url]
        with anyio.fail_after(120):
            # Awaited, not blocking: the daemon answers on this same event loop.
            done = await anyio.run_process(cmd, check=False)
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, stderr[-2000:]
    return done.stdout.decode("utf-8", "replace"), stderr


def stage_widths(svg: Element) -> dict[str, float]:
    return {
        g.attrs["data-stage"]: sum(float(r.attrs["width"]) for r in g.find_all("rect"))
        for g in svg.find_all("g")
    }


async def test_the_status_page_in_chromium(sim: SimServer) -> None:
    s = sim.sim
    plans = [s.new_build(started_ago=ago) for ago in (3, 25, 90, 240, 600, 4000)]
    plans[2] = with_display_name(s, plans[2], 1, EVIL)
    d = Daemon(make_settings(sim.url, [p.record_id for p in plans[1:]]))
    async with running(d):
        await d.watchlist.add(plans[0].record_id, {"job_name": EVIL_LABEL}, source="api")
        records = d.watchlist.records
        await wait_until(d, lambda: all(r.snapshot is not None for r in records.values()))
        base = f"http://127.0.0.1:{d.port}"
        dom, log = await chromium(f"{base}/", "--dump-dom")
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.unlink(missing_ok=True)
        await chromium(f"{base}/", f"--screenshot={SCREENSHOT}", "--window-size=1500,900")
        RECORD_SCREENSHOT.unlink(missing_ok=True)
        await chromium(
            f"{base}/records/{plans[2].record_id}",
            f"--screenshot={RECORD_SCREENSHOT}",
            "--window-size=1100,900",
        )

    doc = parse_html(dom)
    # No script ran: the label's script would have renamed the page, the name's img would exist.
    assert doc.find("title").text == "codearts-stage-monitor"
    assert doc.find_all("script") == [] and doc.find_all("img") == []
    assert "Content Security Policy" not in log  # the inline style was allowed (by its hash)
    rows = doc.find("table", id="builds").find("tbody").find_all("tr")
    assert [r.attrs["data-record-id"] for r in rows] == [p.record_id for p in plans]
    for row, plan in zip(rows, plans, strict=True):
        svgs = row.find_all("svg")
        assert len(svgs) == 1
        truth = truth_stages(s, plan.record_id)
        total = sum(t["duration"] or 0 for t in truth)
        width = float(svgs[0].attrs["width"])
        expected = {t["execution_stage_name"]: (t["duration"] or 0) / total * width for t in truth}
        got = stage_widths(svgs[0])
        assert got.keys() == expected.keys()
        for key, w in expected.items():
            assert abs(got[key] - w) < 0.05, (plan.record_id, key, got[key], w)
    evil_row = rows[2]
    assert EVIL in evil_row.text  # the stage's hover title, as text
    assert EVIL in evil_row.find("svg").text
    assert EVIL_LABEL in rows[0].text
    for path in (SCREENSHOT, RECORD_SCREENSHOT):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 20_000  # a rendered table, not a blank page
