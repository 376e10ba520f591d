"""The auth worker: relays ``user.*`` events from the outbox to JetStream."""

from __future__ import annotations

import asyncio

from auth_service.models import inbox, outbox
from auth_service.settings import Settings
from unpuzzle_common.worker import run_worker as run_service_worker


async def run_worker(settings: Settings, stop_event: asyncio.Event | None = None) -> None:
    await run_service_worker(
        settings, service="auth", outbox=outbox, inbox=inbox, stop_event=stop_event
    )
