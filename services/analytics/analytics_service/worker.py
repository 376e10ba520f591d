"""The analytics worker: the consumers of every producing stream (it publishes nothing)."""

from __future__ import annotations

import asyncio

from analytics_service.events import build_consumers
from analytics_service.models import inbox
from analytics_service.settings import Settings
from unpuzzle_common.worker import run_worker as run_service_worker


async def run_worker(settings: Settings, stop_event: asyncio.Event | None = None) -> None:
    await run_service_worker(
        settings,
        service="analytics",
        outbox=None,
        inbox=inbox,
        consumers=lambda js, sessions: build_consumers(
            js,
            sessions,
            prefix=settings.events_prefix,
            max_deliver=settings.consumer_max_deliver,
            batch_size=settings.consumer_batch_size,
            fetch_timeout=settings.consumer_fetch_timeout,
        ),
        stop_event=stop_event,
    )
