"""A discovery round's outcome: "success", or the first error of the round, whatever follows."""

from __future__ import annotations

from monitor.tracking.rounds import Rounds


class Counted:
    def __init__(self) -> None:
        self.outcomes: list[str] = []

    def count_discovery_run(self, outcome: str) -> None:
        self.outcomes.append(outcome)


class Scripted(Rounds):
    """A round that reports the answers it is given."""

    def __init__(self, counter: Counted, wall: list[float]) -> None:
        super().__init__(counter, interval=1.0, wall=lambda: wall[0])
        self.answers: list[str] = []

    async def _round(self) -> None:
        for outcome in self.answers:
            self.count_run(outcome)


async def test_the_first_error_of_a_round_is_its_outcome_and_each_round_starts_afresh() -> None:
    counted = Counted()
    wall = [100.0]
    rounds = Scripted(counted, wall)
    assert (rounds.last_round_at, rounds.last_outcome) == (None, None)
    rounds.answers = ["success", "forbidden", "success", "timeout"]
    await rounds.run_once()
    assert (rounds.rounds_completed, rounds.last_round_at, rounds.last_outcome) == (
        1,
        100.0,
        "forbidden",
    )
    wall[0] = 160.0
    rounds.answers = ["success", "success"]
    await rounds.run_once()
    assert (rounds.last_round_at, rounds.last_outcome) == (160.0, "success")
    rounds.answers = []  # nothing asked (no job to look at): nothing failed
    await rounds.run_once()
    assert rounds.last_outcome == "success"
    # Every answer is still counted once, each with its own outcome.
    assert counted.outcomes == ["success", "forbidden", "success", "timeout", "success", "success"]
    await rounds.wait_rounds(3)  # already there: returns at once
