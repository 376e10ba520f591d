"""The long-running worker process of a service: outbox relay, event consumers, and the
pruning of its event tables.

``python -m <service> worker`` calls :func:`run_worker`. SIGTERM/SIGINT stop it
cleanly: the relay finishes its batch, consumers stop fetching, connections close.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Callable, Sequence
from datetime import timedelta

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unpuzzle_common.config import ServiceSettings
from unpuzzle_common.db import create_engine, libpq_url, session_factory
from unpuzzle_common.events.bus import connect, jetstream_context
from unpuzzle_common.events.housekeeping import EventHousekeeping
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
    inbox: Table | None = None,
    consumers: ConsumerFactory | None = None,
    stop_event: asyncio.Event | None = None,
) -> None:
    """Run the relay (when the service produces events), its consumers and the pruning
    of its event tables (:mod:`~unpuzzle_common.events.housekeeping`) until stopped."""
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
    probe: asyncio.Server | None = None
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
        if outbox is not None or inbox is not None:
            housekeeping = EventHousekeeping(
                sessions,
                service=service,
                outbox=outbox,
                inbox=inbox,
                retention=timedelta(days=settings.events_retention_days),
                interval=settings.events_housekeeping_interval,
            )
            tasks.append(
                asyncio.create_task(housekeeping.run(stop), name=f"{service}-housekeeping")
            )
        if settings.worker_port is not None:
            probe = await serve_worker_probe(settings.worker_host, settings.worker_port, tasks)
        log.info("worker started", extra={"tasks": [t.get_name() for t in tasks]})
        await stop.wait()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
        if probe is not None:
            probe.close()
        await nc.close()
        await engine.dispose()
        log.info("worker stopped")


async def serve_worker_probe(
    host: str, port: int, tasks: Sequence[asyncio.Task[None]]
) -> asyncio.Server:
    """A tiny HTTP listener for the worker: ``/healthz`` and ``/metrics``.

    ``/healthz`` is 200 while every task (relay, consumers) is running and 503 once
    one has ended, so Kubernetes restarts a worker whose loop died; ``/metrics``
    serves the process's Prometheus metrics (events published, consumed, lag).
    """

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass  # headers are not needed
            path = request_line.split(b" ")[1] if request_line.count(b" ") >= 2 else b""
            if path == b"/healthz":
                dead = [t.get_name() for t in tasks if t.done()]
                status = "503 Service Unavailable" if dead else "200 OK"
                body = json.dumps({"status": "ok" if not dead else "failed", "ended": dead})
                kind = "application/json"
            elif path == b"/metrics":
                status, body, kind = "200 OK", generate_latest().decode(), CONTENT_TYPE_LATEST
            else:
                status, body, kind = "404 Not Found", '{"status": 404}', "application/json"
            payload = body.encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, IndexError):
            pass  # a probe that hung up or spoke nonsense gets nothing
        finally:
            writer.close()

    server = await asyncio.start_server(answer, host, port)
    log.info("worker probe listening", extra={"host": host, "port": port})
    return server
