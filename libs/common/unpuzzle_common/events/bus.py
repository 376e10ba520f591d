"""The NATS connection a service shares between its relay, consumers and readiness check."""

from __future__ import annotations

import logging
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

log = logging.getLogger(__name__)


async def connect(url: str, name: str, **options: Any) -> NATS:
    """Connect to NATS, reconnecting forever (``max_reconnect_attempts=-1``).

    With that setting nats-py also retries the *first* connection until a server
    answers, so a worker may start before NATS does; wrap the call in
    ``asyncio.wait_for`` to bound it. ``name`` shows in the server's connection list
    (use the service name). Further nats-py options override the defaults here.
    """

    async def error_cb(exc: Exception) -> None:
        log.warning("nats error (%s): %r", name, exc)

    async def disconnected_cb() -> None:
        log.warning("nats disconnected (%s)", name)

    async def reconnected_cb() -> None:
        log.info("nats reconnected (%s)", name)

    settings: dict[str, Any] = {
        "servers": url,
        "name": name,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1,
        "connect_timeout": 2,
        "ping_interval": 20,
        "max_outstanding_pings": 3,
        "error_cb": error_cb,
        "disconnected_cb": disconnected_cb,
        "reconnected_cb": reconnected_cb,
    }
    settings.update(options)
    return await nats.connect(**settings)


def jetstream_context(nc: NATS, *, timeout: float = 5.0) -> JetStreamContext:
    """The JetStream context of a connection (``timeout`` bounds API calls and publishes)."""
    return nc.jetstream(timeout=timeout)


async def ping(nc: NATS, *, within: float = 1.0) -> None:
    """Raise unless the server answers a round trip within ``within`` seconds (``/readyz``)."""
    if not nc.is_connected:
        raise ConnectionError("not connected to NATS")
    await nc.flush(timeout=within)
