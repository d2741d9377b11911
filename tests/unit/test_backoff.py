"""One backoff rule for every retry loop: the auth flows and the scheduler."""

from __future__ import annotations

import random

from monitor.domain.backoff import exponential_backoff, jittered_backoff


def test_exponential_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    waits = [exponential_backoff(n, 1.0, 10.0) for n in range(0, 7)]
    assert waits == [0.0, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert exponential_backoff(10_000, 1.0, 10.0) == 10.0  # no overflow after months of failures


def test_jittered_backoff_stays_between_the_base_and_the_ceiling_and_spreads() -> None:
    rng = random.Random(7)
    for failures, ceiling in ((1, 1.0), (2, 3.0), (3, 7.0), (9, 30.0), (10_000, 30.0)):
        waits = [jittered_backoff(failures, 1.0, 30.0, rng) for _ in range(200)]
        assert min(waits) >= 1.0 and max(waits) <= ceiling
        if ceiling > 1.0:
            assert max(waits) - min(waits) > (ceiling - 1.0) / 2  # spread, not one burst
