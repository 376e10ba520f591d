"""The long-running worker process of a service: outbox relay plus event consumers.

``python -m <service> worker`` calls :func:`run_worker`. SIGTERM/SIGINT stop it
cleanly: the relay finishes its batch, consumers stop fetching, connections close.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unpuzzle_common.config import ServiceSettings
from unpuzzle_common.db import create_engine, libpq_url, session_factory
from unpuzzle_common.events.bus import connect, jetstream_context
from unpuzzle_common.events.jetstream import ensure_dlq_stream, ensure_service_stream
from unpuzzle_common.events.relay import OutboxRelay

log = logging.getLogger("unpuzzle.worker")

#: Builds the consumers of a service once connections exist (each has run(stop_event)).
ConsumerFactory = Callable[[object, async_sessionmaker[AsyncSession]], Sequence[object]]


async def run_worker(
    settings: ServiceSettings,
    *,
    service: str,
    outbox: Table | None,
    consumers: ConsumerFactory | None = None,
    stop_event: asyncio.Event | None = None,
) -> None:
    """Run the relay (when the service produces events) and its consumers until stopped."""
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass  # not the main thread (tests): the caller sets stop_event instead
    engine = create_engine(settings.database_url, pool_size=4, application_name=f"{service}-worker")
    sessions = session_factory(engine)
    nc = await connect(settings.nats_url, f"{service}-worker")
    js = jetstream_context(nc)
    tasks: list[asyncio.Task[None]] = []
    try:
        await ensure_dlq_stream(js, settings.events_prefix)
        if outbox is not None:
            await ensure_service_stream(js, settings.events_prefix, service)
            relay = OutboxRelay(
                sessions,
                outbox,
                js,
                settings.events_prefix,
                libpq_url(settings.database_url),
                service=service,
            )
            tasks.append(asyncio.create_task(relay.run(stop), name=f"{service}-relay"))
        for consumer in consumers(js, sessions) if consumers else ():
            tasks.append(asyncio.create_task(consumer.run(stop), name=f"{service}-consumer"))
        log.info("worker started", extra={"tasks": [t.get_name() for t in tasks]})
        await stop.wait()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
        await nc.close()
        await engine.dispose()
        log.info("worker stopped")
