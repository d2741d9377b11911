"""The client refuses to start on an aiohttp that lost the switch it relies on."""

from __future__ import annotations

import aiohttp
import pytest

from monitor.codearts.client import IncompatibleAiohttp, disable_hidden_retry


async def test_the_installed_aiohttp_has_the_switch_and_it_is_turned_off() -> None:
    async with aiohttp.ClientSession() as session:
        assert session._retry_connection is True  # aiohttp's default: re-send once
        disable_hidden_retry(session)
        assert session._retry_connection is False


def test_a_session_without_the_switch_is_refused_naming_the_aiohttp_version() -> None:
    class RenamedInANewRelease:
        pass

    with pytest.raises(IncompatibleAiohttp) as info:
        disable_hidden_retry(RenamedInANewRelease())
    assert f"aiohttp {aiohttp.__version__}" in str(info.value)
    assert "_retry_connection" in str(info.value)
