"""The outbox relay: publishes committed outbox rows to JetStream, in order, at least once.

One relay per service (more are safe: ``FOR UPDATE SKIP LOCKED`` splits the rows, at
the price of strict ordering across them). A row is marked published only after
JetStream's PubAck; a crash in between re-publishes it, and JetStream drops the
repeat by ``Nats-Msg-Id`` (within the stream's duplicate window) — the consumers'
inbox absorbs anything older. A row that cannot be published blocks the rows behind
it (order is kept); it shows in ``attempts``/``last_error`` and in the lag metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import psycopg
from nats.js import JetStreamContext
from nats.js.api import PubAck
from opentelemetry.trace import SpanKind
from psycopg import sql
from sqlalchemy import Row, Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unpuzzle_common.events import metrics
from unpuzzle_common.events._stop import wait_any
from unpuzzle_common.events.envelope import subject_for
from unpuzzle_common.events.outbox import outbox_channel
from unpuzzle_common.events.tracing import context_from, current_trace_headers, tracer

log = logging.getLogger(__name__)

#: Longest LISTEN wait before the relay looks at its stop event again (seconds).
_STOP_CHECK = 0.25


class RelayPublishError(RuntimeError):
    """Publishing an outbox row failed; the rows published before it were marked."""


class OutboxRelay:
    """Moves outbox rows to JetStream: wakes on ``NOTIFY``, polls as a fallback.

    ``sessions`` makes sessions on the service's engine; ``table`` is its outbox
    (:func:`~unpuzzle_common.events.outbox.outbox_table`); ``prefix`` is the first
    token of subjects; ``listen_dsn`` is a libpq URL for the relay's own long-lived
    LISTEN connection (``db.libpq_url(settings.database_url)``).

    Subclasses (tests) may override :meth:`_after_publish` to simulate a crash
    between the PubAck and marking the row.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        table: Table,
        js: JetStreamContext,
        prefix: str,
        listen_dsn: str,
        *,
        batch_size: int = 100,
        poll_interval: float = 5.0,
        publish_timeout: float = 5.0,
        max_backoff: float = 30.0,
        service: str = "",
    ) -> None:
        self._sessions = sessions
        self._table = table
        self._js = js
        self._prefix = prefix
        self._listen_dsn = listen_dsn
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._publish_timeout = publish_timeout
        self._max_backoff = max_backoff
        self._service = service or (table.schema or "")
        self._listener: psycopg.AsyncConnection[Any] | None = None
        self._stop = asyncio.Event()
        self.channel = outbox_channel(table.schema)
        #: Rows published since start (JetStream stored them) and re-publications dropped.
        self.published = 0
        self.duplicates = 0

    # -- publishing ---------------------------------------------------------------------

    async def publish_pending(self) -> int:
        """Publish up to ``batch_size`` unpublished rows in id order; return how many were marked.

        Runs in one transaction holding the rows' locks (``SKIP LOCKED`` lets another
        relay take other rows). If a publish fails, the rows before it are still
        marked, the failing one gets ``attempts``/``last_error``, and
        :class:`RelayPublishError` is raised.
        """
        t = self._table
        failure: Exception | None = None
        async with self._sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(t.c.id, t.c.event_id, t.c.type, t.c.payload, t.c.traceparent)
                    .where(t.c.published_at.is_(None))
                    .order_by(t.c.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            done: list[int] = []
            for row in rows:
                try:
                    ack = await self._publish(row)
                except Exception as exc:
                    failure = exc
                    metrics.EVENTS_PUBLISH_FAILURES.labels(self._service).inc()
                    await session.execute(
                        update(t)
                        .where(t.c.id == row.id)
                        .values(attempts=t.c.attempts + 1, last_error=repr(exc)[:1000])
                    )
                    break
                await self._after_publish(row, ack)
                done.append(row.id)
            if done:
                await session.execute(
                    update(t)
                    .where(t.c.id.in_(done))
                    .values(published_at=func.now(), attempts=t.c.attempts + 1, last_error=None)
                )
        if failure is not None:
            raise RelayPublishError(f"publishing outbox row failed: {failure!r}") from failure
        return len(done)

    async def _publish(self, row: Row[Any]) -> PubAck:
        subject = subject_for(self._prefix, row.type)
        parent = context_from(
            None, traceparent=row.traceparent, tracestate=row.payload.get("tracestate")
        )
        with tracer().start_as_current_span(
            f"{subject} publish",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "send",
                "messaging.destination.name": subject,
                "messaging.message.id": str(row.event_id),
            },
        ) as span:
            headers = {"Nats-Msg-Id": str(row.event_id), "Unpuzzle-Event-Type": row.type}
            headers.update(current_trace_headers())
            body = json.dumps(row.payload, separators=(",", ":")).encode()
            ack = await self._js.publish(
                subject, body, timeout=self._publish_timeout, headers=headers
            )
            span.set_attribute("messaging.nats.duplicate", bool(ack.duplicate))
        if ack.duplicate:
            self.duplicates += 1
            metrics.EVENTS_PUBLISH_DUPLICATES.labels(self._service, row.type).inc()
        else:
            self.published += 1
            metrics.EVENTS_PUBLISHED.labels(self._service, row.type).inc()
        return ack

    async def _after_publish(self, row: Row[Any], ack: PubAck) -> None:
        """Called after each PubAck, before the row is marked. A hook for crash tests."""

    async def update_lag(self) -> tuple[int, float]:
        """Refresh the outbox lag gauges; return (unpublished rows, oldest age in seconds)."""
        t = self._table
        async with self._sessions() as session:
            count, age = (
                await session.execute(
                    select(
                        func.count(),
                        func.coalesce(
                            func.extract("epoch", func.now() - func.min(t.c.created_at)), 0
                        ),
                    ).where(t.c.published_at.is_(None))
                )
            ).one()
        metrics.OUTBOX_LAG_EVENTS.labels(self._service).set(count)
        metrics.OUTBOX_LAG_SECONDS.labels(self._service).set(float(age))
        return int(count), float(age)

    # -- running ------------------------------------------------------------------------

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        """Publish until ``stop_event`` (or :meth:`stop`) is set.

        Drains the outbox, then waits for a ``NOTIFY`` or ``poll_interval``. The LISTEN
        connection is re-opened when it drops (and the outbox polled, since
        notifications were missed meanwhile). When NATS or the database fails, it
        logs and retries with exponential backoff up to ``max_backoff``.
        """
        stop = stop_event or self._stop
        failures = 0
        try:
            while not self._stopping(stop):
                await self._ensure_listener()
                try:
                    while await self.publish_pending() >= self._batch_size:
                        if self._stopping(stop):
                            return
                    failures = 0
                except Exception as exc:
                    failures += 1
                    delay = min(self._max_backoff, 0.5 * 2 ** (failures - 1))
                    log.warning("outbox relay: %r; retrying in %.1fs", exc, delay)
                    await self._sleep(stop, delay)
                    continue
                with contextlib.suppress(Exception):
                    await self.update_lag()
                await self._wait_for_wakeup(stop)
        finally:
            await self._close_listener()

    def stop(self) -> None:
        """Ask :meth:`run` to return (within a fraction of a second)."""
        self._stop.set()

    def _stopping(self, stop: asyncio.Event) -> bool:
        return stop.is_set() or self._stop.is_set()

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        await wait_any((stop, self._stop), seconds)

    async def _wait_for_wakeup(self, stop: asyncio.Event) -> None:
        """Return on a notification, after ``poll_interval``, on stop, or if LISTEN broke."""
        deadline = time.monotonic() + self._poll_interval
        while not self._stopping(stop) and (left := deadline - time.monotonic()) > 0:
            listener = self._listener
            if listener is None:
                await self._sleep(stop, left)
                continue
            try:
                if await self._next_notify(listener, min(left, _STOP_CHECK)):
                    # Swallow the wake-ups already queued: the coming poll covers them.
                    while await self._next_notify(listener, 0):
                        pass
                    return
            except psycopg.Error as exc:
                log.warning("outbox listener lost: %r", exc)
                await self._close_listener()
                return

    @staticmethod
    async def _next_notify(listener: psycopg.AsyncConnection[Any], seconds: float) -> bool:
        async with contextlib.aclosing(listener.notifies(timeout=seconds, stop_after=1)) as gen:
            async for _ in gen:
                return True
        return False

    async def _ensure_listener(self) -> None:
        if self._listener is not None and not self._listener.closed:
            return
        self._listener = None
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._listen_dsn,
                autocommit=True,
                application_name=f"outbox-relay-{self._service}"[:63],
                keepalives=1,
                keepalives_idle=30,
                keepalives_interval=10,
                keepalives_count=3,
            )
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        except psycopg.Error as exc:
            log.warning("outbox listener cannot connect (polling meanwhile): %r", exc)
            return
        self._listener = conn

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close()
