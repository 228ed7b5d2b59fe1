"""Every Bedrock client test runs on both event loops: uvloop in production, asyncio in tests.

They differ where an HTTP client can trip: uvloop's transports are not `asyncio.Transport`
subclasses, and they call protocol callbacks in their own order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import uvloop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
