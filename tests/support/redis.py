"""A real redis-server (Debian's) on a free loopback port in a temporary directory."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_PASSWORD = "redis-pw-Kd93jLq0xVb7"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process: append-only on disk, so a restart keeps its data."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "redis.log"

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            "--daemonize", "no", "--logfile", str(self.log), "--protected-mode", "no",
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # another process: nothing to await but its port
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited: {self.log.read_text()}") from None
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def wipe(self) -> None:
        """Stopped: remove its data, so the next start is an empty Redis."""
        assert self.proc is None
        for path in self.dir.iterdir():
            if path.name != self.log.name:
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    def command(self, *args: str) -> str:
        """One command through redis-cli, for tests that look inside."""
        cli = [shutil.which("redis-cli") or "redis-cli", "-p", str(self.port)]
        if self.password:
            cli += ["--no-auth-warning", "-a", self.password]
        return subprocess.run(
            [*cli, *args], check=True, capture_output=True, text=True, timeout=10
        ).stdout


def need_redis() -> None:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is missing: `make tools` (as root) installs Debian's package")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test, stopped afterwards."""
    need_redis()
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()
