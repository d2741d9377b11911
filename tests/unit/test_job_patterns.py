"""Job-name patterns are anchored at both ends, as Prometheus relabelling regexes are."""

from __future__ import annotations

from monitor.domain.labels import anchored_pattern


def test_a_pattern_matches_whole_names_only() -> None:
    assert anchored_pattern("tmp").match("tmp")
    assert not anchored_pattern("tmp").match("tmp-1")
    assert not anchored_pattern("tmp").match("my-tmp")
    assert anchored_pattern("tmp-.*").match("tmp-1")
    assert anchored_pattern("a|b").match("b")
    assert not anchored_pattern("a|b").match("ab")
    assert not anchored_pattern("x").match("x\n")
    assert anchored_pattern(".*").match("")
