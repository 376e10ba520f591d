"""The AI worker: relays ``ai.usage.recorded.v1`` and applies the events it consumes."""

from __future__ import annotations

import asyncio

from ai_service.events import build_consumers
from ai_service.models import inbox, outbox
from ai_service.settings import Settings
from unpuzzle_common.worker import run_worker as run_service_worker


async def run_worker(settings: Settings, stop_event: asyncio.Event | None = None) -> None:
    await run_service_worker(
        settings,
        service="ai",
        outbox=outbox,
        inbox=inbox,
        consumers=lambda js, sessions: build_consumers(settings, js, sessions),
        stop_event=stop_event,
    )
