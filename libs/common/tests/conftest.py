"""Fixtures shared by the unpuzzle_common tests.

The tests run against the real local PostgreSQL, Redis and NATS named in
:mod:`unpuzzle_common.testing`. Helpers are fixtures (the suite runs with
``--import-mode=importlib``, so test modules cannot import this file).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from redis.asyncio import Redis

from unpuzzle_common.testing import REDIS_URL, drop_service_schema_and_role

ClientFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def client_for() -> AsyncIterator[ClientFactory]:
    """Make an in-process HTTP client for an ASGI app; closed after the test.

    ``client_for(app, raise_app_exceptions=False)`` lets a test see the 500 answer of
    an unexpected exception instead of the exception itself.
    """
    clients: list[httpx.AsyncClient] = []

    def make(app, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        client = httpx.AsyncClient(transport=transport, base_url="http://service.test")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    """A connection to the test Redis database."""
    client = Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """``unique_name("svc")`` → ``svc_3f9a1c2b`` (a safe SQL identifier, unique per call)."""

    def make(stem: str) -> str:
        return f"{stem}_{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def drop_service() -> Iterator[Callable[[str], str]]:
    """Register a service whose schema and role are dropped after the test.

    ``drop_service("svc_a")`` returns the name, so it can wrap a provisioning call.
    """
    services: list[str] = []

    def register(service: str) -> str:
        services.append(service)
        return service

    yield register
    for service in services:
        drop_service_schema_and_role(service)
