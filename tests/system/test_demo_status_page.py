"""`stage-monitor demo` prints the status page URL first, then the metrics URL; both answer."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.html import parse_html

ROOT = Path(__file__).resolve().parents[2]
DEMO = "from monitor.cli import main; raise SystemExit(main(['demo', '--port', '0']))"


def test_demo_prints_the_status_page_first_and_serves_it() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", DEMO],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        urls: list[tuple[str, str]] = []
        deadline = time.monotonic() + 60
        while len(urls) < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            name, sep, url = line.strip().partition(": ")
            if sep and url.strip().startswith("http://127.0.0.1:"):
                urls.append((name.strip(), url.strip()))
        assert [name for name, _ in urls] == ["status page", "metrics"], urls
        page_url, metrics_url = urls[0][1], urls[1][1]
        assert metrics_url == page_url + "metrics"
        with urllib.request.urlopen(page_url, timeout=10) as resp:  # noqa: S310 (loopback)
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
            doc = parse_html(resp.read().decode())
        rows = doc.find("table", id="builds").find("tbody").find_all("tr")
        assert rows and all(len(r.find_all("svg")) == 1 for r in rows)
        with urllib.request.urlopen(metrics_url, timeout=10) as resp:  # noqa: S310 (loopback)
            assert b"codearts_build_stage_status" in resp.read()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
