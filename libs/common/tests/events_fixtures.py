"""Fixtures of the event-plumbing tests (imported by the test_events_* modules).

Each test gets its own schema and role (unique name, dropped afterwards), its own
subject prefix (streams deleted afterwards) and its own NATS connection.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from psycopg import sql
from sqlalchemy import Column, Integer, MetaData, Table, Uuid, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from unpuzzle_common.db import create_engine, libpq_url, role_name, session_factory
from unpuzzle_common.events import (
    Envelope,
    EventConsumer,
    OutboxRelay,
    connect,
    create_event_tables,
    ensure_service_stream,
    inbox_table,
    jetstream_context,
    outbox_table,
    stream_name,
)
from unpuzzle_common.testing import (
    NATS_URL,
    database_admin_url,
    delete_streams_with_prefix,
    drop_schema,
    fresh_service_database,
    unique_prefix,
)

_EXPORTER = InMemorySpanExporter()


def span_exporter() -> InMemorySpanExporter:
    """An in-memory exporter attached to the global SDK tracer provider (set if missing)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    if not getattr(provider, "_unpuzzle_events_exporter", False):
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        provider._unpuzzle_events_exporter = True  # type: ignore[attr-defined]
    return _EXPORTER


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 5.0, interval: float = 0.05
) -> Any:
    """Await ``check()`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)


def _drop_schema_and_role(service: str) -> None:
    drop_schema(service)
    with psycopg.connect(database_admin_url(), autocommit=True) as conn:
        role = role_name(service)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if exists:
            conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@dataclass
class EventsEnv:
    """Everything one test needs: a schema with outbox/inbox/effects, NATS, a stream."""

    service: str
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    metadata: MetaData
    outbox: Table
    inbox: Table
    effects: Table
    prefix: str
    nc: NATS
    js: JetStreamContext

    @property
    def listen_dsn(self) -> str:
        return libpq_url(self.url)

    @property
    def stream(self) -> str:
        return stream_name(self.prefix, "auth")

    def relay(self, cls: type[OutboxRelay] = OutboxRelay, **options: Any) -> OutboxRelay:
        options.setdefault("poll_interval", 30.0)
        return cls(
            self.sessions,
            self.outbox,
            self.js,
            self.prefix,
            self.listen_dsn,
            service=self.service,
            **options,
        )

    async def record_effect(self, session: AsyncSession, envelope: Envelope) -> None:
        """A handler: one ``effects`` row per applied event."""
        await session.execute(insert(self.effects).values(event_id=envelope.id))

    def consumer(
        self,
        cls: type[EventConsumer] = EventConsumer,
        *,
        name: str = "courses_user",
        handler: Any = None,
        **options: Any,
    ) -> EventConsumer:
        options.setdefault("ack_wait", 2.0)
        options.setdefault("fetch_timeout", 0.5)
        return cls(
            self.js,
            self.sessions,
            self.inbox,
            name,
            self.stream,
            f"{self.prefix}.user.>",
            handler or self.record_effect,
            service=self.service,
            **options,
        )

    async def count(self, table: Table) -> int:
        async with self.sessions() as session:
            return (await session.execute(select(func.count()).select_from(table))).scalar_one()


@pytest.fixture
async def events_env() -> AsyncIterator[EventsEnv]:
    """A fresh schema (outbox, inbox, effects), a NATS connection and the auth stream."""
    service = f"evt_{uuid.uuid4().hex[:10]}"
    prefix = unique_prefix()
    engine: AsyncEngine | None = None
    nc: NATS | None = None
    try:
        url = fresh_service_database(service)
        engine = create_engine(url, pool_size=5, application_name=service)
        metadata = MetaData(schema=service)
        outbox = outbox_table(metadata)
        inbox = inbox_table(metadata)
        effects = Table(
            "effects",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("event_id", Uuid(as_uuid=True), nullable=False),
        )
        async with engine.begin() as conn:
            await conn.run_sync(create_event_tables, service)
            await conn.run_sync(lambda sync: effects.create(sync))
        nc = await asyncio.wait_for(connect(NATS_URL, f"test-{service}"), 5)
        js = jetstream_context(nc)
        await ensure_service_stream(js, prefix, "auth")
        yield EventsEnv(
            service,
            url,
            engine,
            session_factory(engine),
            metadata,
            outbox,
            inbox,
            effects,
            prefix,
            nc,
            js,
        )
    finally:
        if nc is not None:
            await delete_streams_with_prefix(nc.jetstream(), prefix)
            await nc.close()
        if engine is not None:
            await engine.dispose()
        _drop_schema_and_role(service)
