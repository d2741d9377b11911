"""Files that change under a running daemon: mounted Secrets, the watchlist file.

A leaf, like `monitor.logging`: any room may use it, it imports nothing of monitor.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

Stamp = tuple[int, int, int]
MISSING: Stamp = (0, 0, 0)


def file_stamp(path: Path) -> Stamp:
    """What changes when a file is replaced or rewritten: inode, mtime and size.

    Kubernetes swaps a mounted Secret by replacing a symlink, so the inode moves even
    when mtime and size do not. Raises OSError when the file cannot be read.
    """
    st = os.stat(path)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class FileSecret:
    """A secret kept in a file (a mounted Kubernetes Secret); re-read when the file changes."""

    def __init__(
        self, path: Path, on_change: Callable[[Iterable[str]], None] | None = None
    ) -> None:
        self._path = path
        self._stamp: Stamp | None = None
        self._value = ""
        self._on_change = on_change

    def __call__(self) -> str:
        stamp = file_stamp(self._path)
        if stamp != self._stamp:
            self._value = self._path.read_text(encoding="utf-8").strip()
            self._stamp = stamp
            if self._on_change is not None:  # a rotated secret must be redacted too
                self._on_change([self._value])
        return self._value
