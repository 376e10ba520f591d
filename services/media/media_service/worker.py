"""The media worker: relays ``media.*`` events from the outbox to JetStream, keeps the
access read model from the courses service's events, and processes uploaded media."""

from __future__ import annotations

import asyncio

from media_service.events import build_consumers
from media_service.models import inbox, outbox
from media_service.processing import MediaProcessor
from media_service.settings import Settings
from media_service.storage import S3ObjectStore, prepare_bucket
from media_service.transcription import make_transcriber
from unpuzzle_common.worker import run_worker as run_service_worker


async def run_worker(settings: Settings, stop_event: asyncio.Event | None = None) -> None:
    store = S3ObjectStore(settings)
    transcriber = make_transcriber(settings)
    try:
        await prepare_bucket(store, settings)

        def consumers(js, sessions):
            processor = MediaProcessor(sessions, store, settings, transcriber=transcriber)
            return [
                *build_consumers(
                    js,
                    sessions,
                    prefix=settings.events_prefix,
                    on_upload=processor.wake,
                    max_deliver=settings.consumer_max_deliver,
                ),
                processor,
            ]

        await run_service_worker(
            settings,
            service="media",
            outbox=outbox,
            inbox=inbox,
            consumers=consumers,
            stop_event=stop_event,
        )
    finally:
        if transcriber is not None:
            await transcriber.aclose()
        store.close()
