"""How long to wait after repeated failures: one rule for every retry loop."""

from __future__ import annotations

import random

MAX_DOUBLINGS = 30  # 2**30 times the base is past any cap we use; keeps the float finite


def exponential_backoff(failures: int, base: float, cap: float) -> float:
    """`base` after the first failure, doubling with each further one, never above `cap`."""
    if failures <= 0:
        return 0.0
    return min(cap, base * float(2 ** min(failures - 1, MAX_DOUBLINGS)))


def jittered_backoff(
    failures: int, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """At least `base`, plus full jitter up to the exponential ceiling (at most `cap`).

    Full jitter spreads the retries of many records that failed together (one outage)
    over the whole window instead of sending them back in one burst.
    """
    ceiling = min(cap, base * float(2 ** min(failures, MAX_DOUBLINGS) - 1))
    return base + (rng or random).uniform(0, max(0.0, ceiling - base))
