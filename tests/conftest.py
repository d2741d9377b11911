"""Fixtures every tier shares; the helpers behind them live in tests/support/."""

from tests.support.loopback import log_stream, sim

__all__ = ["log_stream", "sim"]
