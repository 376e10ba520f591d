"""Transactional outbox and idempotency inbox tables, and writing an event.

A producer calls :func:`add_event` inside the transaction that makes the change the
event describes, so both commit or neither does. :class:`~unpuzzle_common.events.relay.OutboxRelay`
publishes the row afterwards. A consumer records every applied event in its ``inbox``
in the transaction of the effect (see :class:`~unpuzzle_common.events.consumer.EventConsumer`).

Both tables live in the service's own schema (``metadata.schema``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
    and_,
    any_,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.schemas import EventData
from unpuzzle_common.events.tracing import current_trace_headers

OUTBOX = "outbox"
INBOX = "inbox"


def _existing(metadata: MetaData, name: str) -> Table | None:
    key = f"{metadata.schema}.{name}" if metadata.schema else name
    return metadata.tables.get(key)


def outbox_table(metadata: MetaData) -> Table:
    """The ``outbox`` table in ``metadata.schema`` (returned as is when already defined).

    ``id`` orders publication; ``event_id`` is the envelope id (``Nats-Msg-Id``);
    ``subject`` is the envelope subject (the entity id), the NATS subject being derived
    from ``type`` by the relay; ``payload`` is the whole envelope.
    """
    existing = _existing(metadata, OUTBOX)
    if existing is not None:
        return existing
    return Table(
        OUTBOX,
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", Uuid(as_uuid=True), nullable=False, unique=True),
        Column("type", Text, nullable=False),
        Column("subject", Text, nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("traceparent", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text, nullable=True),
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    )


def inbox_table(metadata: MetaData) -> Table:
    """The ``inbox`` table in ``metadata.schema``: one row per (consumer, applied event)."""
    existing = _existing(metadata, INBOX)
    if existing is not None:
        return existing
    return Table(
        INBOX,
        metadata,
        Column("consumer", Text, primary_key=True),
        Column("event_id", Uuid(as_uuid=True), primary_key=True),
        Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def create_event_tables(sync_connection: Connection, schema: str) -> None:
    """Create ``outbox`` and ``inbox`` in ``schema`` unless they exist (for Alembic).

    In a migration: ``create_event_tables(op.get_bind(), "courses")``.
    """
    metadata = MetaData(schema=schema)
    outbox_table(metadata)
    inbox_table(metadata)
    metadata.create_all(sync_connection, checkfirst=True)


def drop_event_tables(sync_connection: Connection, schema: str) -> None:
    """Drop ``outbox`` and ``inbox`` from ``schema`` (a migration's downgrade)."""
    metadata = MetaData(schema=schema)
    outbox_table(metadata)
    inbox_table(metadata)
    metadata.drop_all(sync_connection, checkfirst=True)


def outbox_channel(schema: str | None) -> str:
    """The LISTEN/NOTIFY channel announcing new rows of a schema's outbox."""
    return f"outbox_{schema}" if schema else "outbox"


async def add_event(
    session: AsyncSession,
    table: Table,
    data: EventData,
    *,
    source: str,
    subject: str | None = None,
) -> Envelope:
    """Write ``data`` as an event to the outbox, in the caller's transaction.

    ``source`` is the producing service; ``subject`` is the id of the entity the event
    is about (default: the model's ``subject_field``). The current OpenTelemetry
    context is recorded, and a ``NOTIFY`` on :func:`outbox_channel` wakes the relay
    when (and only if) the transaction commits. Returns the envelope written.
    """
    trace_headers = current_trace_headers()
    envelope = Envelope.new(
        data,
        source=source,
        subject=subject,
        traceparent=trace_headers.get("traceparent"),
        tracestate=trace_headers.get("tracestate"),
    )
    await session.execute(
        insert(table).values(
            event_id=envelope.id,
            type=envelope.type,
            subject=envelope.subject,
            payload=envelope.model_dump(mode="json"),
            traceparent=envelope.traceparent,
        )
    )
    await session.execute(select(func.pg_notify(outbox_channel(table.schema), "")))
    return envelope


async def prune_published(
    session: AsyncSession, table: Table, *, older_than: timedelta, limit: int
) -> int:
    """Delete outbox rows published more than ``older_than`` ago (at most ``limit`` of
    them); returns how many. Unpublished rows are never deleted, however old."""
    published_long_ago = and_(
        table.c.published_at.is_not(None), table.c.published_at < func.now() - older_than
    )
    return await _delete_where(session, table, published_long_ago, limit)


async def prune_inbox(
    session: AsyncSession, table: Table, *, older_than: timedelta, limit: int
) -> int:
    """Delete inbox rows older than ``older_than`` (at most ``limit``); returns how many.

    Keep them longer than the producers' streams keep events (7 days): an inbox row is
    what makes a redelivered or replayed event a no-op.
    """
    return await _delete_where(session, table, table.c.received_at < func.now() - older_than, limit)


async def _delete_where(session: AsyncSession, table: Table, condition: Any, limit: int) -> int:
    """Delete up to ``limit`` rows matching ``condition``, picked by physical row id: one
    short transaction per batch, however large the table."""
    ctid = literal_column("ctid")
    batch = select(ctid).select_from(table).where(condition).limit(limit)
    statement = delete(table).where(ctid == any_(func.array(batch.scalar_subquery())))
    result = await session.execute(statement)
    return result.rowcount or 0  # type: ignore[attr-defined]
