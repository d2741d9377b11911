"""Bad input met by discovery: each problem logged and counted once, until it goes away."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


class Problems:
    """Remembers (problem, subject) pairs so each is logged once while it lasts.

    Bounded by what discovery lists: a subject's entries go when it is cleared.
    """

    def __init__(self, count: Callable[[str], None], log: Any) -> None:
        self._count = count
        self._log = log
        self._open: dict[tuple[str, str], str] = {}

    def report(self, problem: str, subject: str, error: str, **context: str) -> None:
        key = (problem, subject)
        if key in self._open:
            return
        self._open[key] = error
        self._count(problem)
        self._log.warning("discovery_problem", problem=problem, error=error, **context)

    def clear(self, subject: str, problem: str | None = None) -> None:
        """The subject is fine again (for one problem, or every one)."""
        if problem is not None:
            self._open.pop((problem, subject), None)
            return
        for key in [k for k in self._open if k[1] == subject]:
            del self._open[key]

    def keep_only(self, problem: str, prefix: str, subjects: Iterable[str]) -> None:
        """Of `problem`'s subjects starting with `prefix`, forget those not in `subjects`."""
        keep = set(subjects)
        for key in [k for k in self._open if k[0] == problem and k[1].startswith(prefix)]:
            if key[1] not in keep:
                del self._open[key]
