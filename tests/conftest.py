"""Fixtures every tier shares; the helpers behind them live in tests/support/."""

from tests.support.loopback import log_stream, sim
from tests.support.redis import redis_server

__all__ = ["log_stream", "redis_server", "sim"]
