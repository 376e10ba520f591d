"""The payments worker: relays payment.* and subscription.* events from the outbox to
JetStream and runs the consumers of the courses service's course and enrollment events."""

from __future__ import annotations

import asyncio

from payments_service.events import build_consumers
from payments_service.models import inbox, outbox
from payments_service.settings import Settings
from unpuzzle_common.worker import run_worker as run_service_worker


async def run_worker(settings: Settings, stop_event: asyncio.Event | None = None) -> None:
    await run_service_worker(
        settings,
        service="payments",
        outbox=outbox,
        inbox=inbox,
        consumers=lambda js, sessions: build_consumers(
            js,
            sessions,
            prefix=settings.events_prefix,
            max_deliver=settings.consumer_max_deliver,
        ),
        stop_event=stop_event,
    )
