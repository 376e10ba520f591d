"""Waiting that a stop request interrupts (shared by the relay and the consumers)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


async def wait_any(events: Sequence[asyncio.Event], seconds: float) -> bool:
    """Wait until one of ``events`` is set or ``seconds`` have passed; True if one was set."""
    if any(event.is_set() for event in events):
        return True
    if seconds <= 0:
        return False
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return bool(done)
