"""Idempotent event consumers: durable pull consumer + inbox, bounded retries, dead letters.

For each message: parse the envelope (unparseable → dead letter at once), then in one
transaction insert ``(consumer, event_id)`` into the inbox and, if that row is new,
run the handler; commit; then ``ack_sync``. A redelivered event finds its inbox row
and is acknowledged without a second effect. A failing handler rolls back and the
message is ``nak``-ed with a delay; after ``max_deliver`` deliveries it is published
to the dead-letter subject (with the reason in headers) and terminated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unpuzzle_common.events import metrics
from unpuzzle_common.events._stop import wait_any
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.jetstream import dlq_subject as default_dlq_subject
from unpuzzle_common.events.jetstream import ensure_consumer, ensure_dlq_stream
from unpuzzle_common.events.schemas import EventData
from unpuzzle_common.events.tracing import context_from, tracer

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Envelope], Awaitable[None]]
E = TypeVar("E", bound=EventData)
TypedHandler = Callable[[AsyncSession, Any, Envelope], Awaitable[None]]

#: Headers added to a dead letter (besides the original ones).
DLQ_REASON = "Unpuzzle-Dlq-Reason"
DLQ_CONSUMER = "Unpuzzle-Dlq-Consumer"
DLQ_DELIVERIES = "Unpuzzle-Dlq-Deliveries"
DLQ_SUBJECT = "Unpuzzle-Dlq-Subject"
DLQ_STREAM = "Unpuzzle-Dlq-Stream"
DLQ_STREAM_SEQ = "Unpuzzle-Dlq-Stream-Seq"


class PoisonEvent(Exception):
    """Raise from a handler when retrying cannot help: the event is dead-lettered at once."""


def _header_value(text: str, limit: int = 500) -> str:
    """A header-safe value: ASCII, one line, bounded (nats-py drops non-ASCII headers)."""
    flat = " ".join(text.split())
    return flat.encode("ascii", "replace").decode("ascii")[:limit]


class EventRouter:
    """A handler that dispatches on ``envelope.type`` with typed data.

    ``router.on(PaymentSucceeded)`` registers ``async def f(session, data, envelope)``.
    Types without a route are acknowledged and ignored (a consumer's wildcard filter
    may match events it does not care about); data that does not fit its model is a
    :class:`PoisonEvent`.
    """

    def __init__(self) -> None:
        self._routes: dict[str, TypedHandler] = {}

    def on(self, model: type[E]) -> Callable[[TypedHandler], TypedHandler]:
        """Decorator registering the handler of ``model.event_type``."""

        def register(fn: TypedHandler) -> TypedHandler:
            self._routes[model.event_type] = fn
            return fn

        return register

    @property
    def event_types(self) -> list[str]:
        """The event types that have a route."""
        return sorted(self._routes)

    async def __call__(self, session: AsyncSession, envelope: Envelope) -> None:
        route = self._routes.get(envelope.type)
        if route is None:
            return
        try:
            data = envelope.parsed()
        except ValidationError as exc:
            raise PoisonEvent(f"invalid {envelope.type} data: {exc}") from exc
        await route(session, data, envelope)


class EventConsumer:
    """A durable pull consumer applying events exactly once through the inbox.

    ``name`` is the durable name and the inbox's ``consumer`` column; ``stream`` is the
    producer's stream; ``filter_subject`` a subject or wildcard. ``backoff`` gives the
    ``nak`` delay after the n-th failed delivery (the last value repeats). The server's
    ``max_deliver`` is ``max_deliver + dlq_retries`` so a failed dead-letter publish is
    retried; the consumer itself dead-letters at ``max_deliver``.

    Subclasses (tests) may override :meth:`_before_ack` to simulate a crash between
    the commit and the ack.
    """

    def __init__(
        self,
        js: JetStreamContext,
        sessions: async_sessionmaker[AsyncSession],
        inbox: Table,
        name: str,
        stream: str,
        filter_subject: str,
        handler: Handler,
        *,
        max_deliver: int = 5,
        ack_wait: float = 30.0,
        backoff: Sequence[float] = (1.0, 5.0, 30.0),
        dlq_subject: str | None = None,
        dlq_retries: int = 2,
        batch_size: int = 10,
        fetch_timeout: float = 2.0,
        heartbeat: float | None = None,
        max_ack_pending: int = 1000,
        service: str = "",
        ensure: bool = True,
    ) -> None:
        if max_deliver < 1:
            raise ValueError("max_deliver must be at least 1")
        self._js = js
        self._sessions = sessions
        self._inbox = inbox
        self.name = name
        self.stream = stream
        self.filter_subject = filter_subject
        self._handler = handler
        self.max_deliver = max_deliver
        self._ack_wait = ack_wait
        self._backoff = tuple(backoff) or (1.0,)
        self._prefix = filter_subject.split(".", 1)[0]
        self.dlq_subject = dlq_subject or default_dlq_subject(self._prefix, name)
        self._dlq_retries = dlq_retries
        self._batch_size = batch_size
        self._fetch_timeout = fetch_timeout
        self._heartbeat = heartbeat
        self._max_ack_pending = max_ack_pending
        self._service = service or (inbox.schema or "")
        self._ensure = ensure
        self._sub: JetStreamContext.PullSubscription | None = None
        self._stop = asyncio.Event()

    # -- setup --------------------------------------------------------------------------

    async def start(self) -> None:
        """Apply the consumer config (and the DLQ stream) unless ``ensure=False``; bind."""
        if self._ensure:
            if self.dlq_subject == default_dlq_subject(self._prefix, self.name):
                await ensure_dlq_stream(self._js, self._prefix)
            await ensure_consumer(
                self._js,
                self.stream,
                self.name,
                self.filter_subject,
                max_deliver=self.max_deliver + self._dlq_retries,
                ack_wait=self._ack_wait,
                max_ack_pending=self._max_ack_pending,
            )
        self._sub = await self._js.pull_subscribe_bind(durable=self.name, stream=self.stream)

    async def close(self) -> None:
        """Drop the pull subscription (the durable consumer stays on the server)."""
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception as exc:
                log.debug("unsubscribe failed: %r", exc)

    # -- one message --------------------------------------------------------------------

    async def handle(self, msg: Msg) -> str:
        """Process one delivered message; return its result (see :mod:`.metrics`)."""
        try:
            envelope = Envelope.from_json(msg.data)
        except ValueError as exc:
            ok = await self._dead_letter(msg, None, f"unparseable envelope: {exc}")
            return metrics.DEAD_LETTERED if ok else metrics.FAILED
        parent = context_from(
            msg.headers, traceparent=envelope.traceparent, tracestate=envelope.tracestate
        )
        with tracer().start_as_current_span(
            f"{msg.subject} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.destination.name": msg.subject,
                "messaging.consumer.group.name": self.name,
                "messaging.message.id": str(envelope.id),
            },
        ) as span:
            try:
                applied = await self._apply(envelope)
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                return await self._on_failure(msg, envelope, exc)
            result = metrics.APPLIED if applied else metrics.DUPLICATE
            self._count(result)
            await self._before_ack(msg, envelope)
            try:
                await msg.ack_sync(timeout=2.0)
            except Exception as exc:
                # Committed: a redelivery will be a no-op thanks to the inbox.
                log.warning(
                    "ack of %s failed (%r); it will come back as a duplicate", envelope.id, exc
                )
            return result

    async def _apply(self, envelope: Envelope) -> bool:
        """Inbox row + handler in one transaction; False when already applied."""
        async with self._sessions() as session, session.begin():
            inserted = await session.execute(
                insert(self._inbox)
                .values(consumer=self.name, event_id=envelope.id)
                .on_conflict_do_nothing()
                .returning(self._inbox.c.event_id)
            )
            if inserted.first() is None:
                return False
            await self._handler(session, envelope)
        return True

    async def _before_ack(self, msg: Msg, envelope: Envelope) -> None:
        """Called after the commit, before the ack. A hook for crash tests."""

    async def _on_failure(self, msg: Msg, envelope: Envelope, exc: Exception) -> str:
        delivered = msg.metadata.num_delivered
        reason = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, PoisonEvent) or delivered >= self.max_deliver:
            log.error(
                "%s: dead-lettering %s after %d deliveries: %s",
                self.name,
                envelope.id,
                delivered,
                reason,
            )
            if await self._dead_letter(msg, envelope, reason):
                return metrics.DEAD_LETTERED
        else:
            log.warning(
                "%s: event %s failed (delivery %d): %s", self.name, envelope.id, delivered, reason
            )
        self._count(metrics.FAILED)
        delay = self._backoff[min(delivered, len(self._backoff)) - 1]
        try:
            await msg.nak(delay=delay)
        except Exception as nak_exc:
            log.warning("nak failed (%r); redelivered after ack_wait", nak_exc)
        return metrics.FAILED

    async def _dead_letter(self, msg: Msg, envelope: Envelope | None, reason: str) -> bool:
        """Publish the message to the DLQ subject and terminate it; False if that failed."""
        meta = msg.metadata
        headers = dict(msg.headers or {})
        event_key = str(envelope.id) if envelope else f"{meta.stream}:{meta.sequence.stream}"
        headers.update(
            {
                "Nats-Msg-Id": f"{self.name}:{event_key}",
                DLQ_REASON: _header_value(reason),
                DLQ_CONSUMER: self.name,
                DLQ_DELIVERIES: str(meta.num_delivered),
                DLQ_SUBJECT: msg.subject,
                DLQ_STREAM: meta.stream,
                DLQ_STREAM_SEQ: str(meta.sequence.stream),
            }
        )
        try:
            await self._js.publish(self.dlq_subject, msg.data, headers=headers)
        except Exception as exc:
            log.error(
                "%s: dead-letter publish failed: %r (payload %r)", self.name, exc, msg.data[:2000]
            )
            return False
        try:
            await msg.term()
        except Exception as exc:
            log.warning("term failed (%r); the dead letter may be repeated", exc)
        self._count(metrics.DEAD_LETTERED)
        return True

    def _count(self, result: str) -> None:
        metrics.EVENTS_CONSUMED.labels(self._service, self.name, result).inc()

    # -- running ------------------------------------------------------------------------

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        """Fetch and handle messages until ``stop_event`` (or :meth:`stop`) is set.

        Survives NATS restarts: fetch timeouts are normal; any other error drops the
        subscription and re-applies the consumer (re-created if the server lost it)
        with exponential backoff. A handler crash leaves the message unacked (it is
        redelivered after ``ack_wait``).
        """
        stop = stop_event or self._stop
        failures = 0
        last_check = time.monotonic()
        try:
            while not self._stopping(stop):
                if self._sub is None:
                    try:
                        await self.start()
                        failures = 0
                    except Exception as exc:
                        failures += 1
                        await self._backoff_sleep(stop, failures, f"cannot start: {exc!r}")
                        continue
                assert self._sub is not None
                try:
                    msgs = await self._sub.fetch(
                        self._batch_size, timeout=self._fetch_timeout, heartbeat=self._heartbeat
                    )
                except TimeoutError:
                    if time.monotonic() - last_check > 30:
                        last_check = time.monotonic()
                        await self._check_consumer()
                    continue
                except (nats.errors.Error, OSError) as exc:
                    failures += 1
                    await self.close()
                    await self._backoff_sleep(stop, failures, f"fetch failed: {exc!r}")
                    continue
                failures = 0
                try:
                    await self.handle_batch(msgs)
                except Exception:
                    log.exception("%s: batch left unacked (redelivered after ack_wait)", self.name)
        finally:
            await self.close()

    async def handle_batch(self, msgs: Sequence[Msg]) -> None:
        """Process one fetched batch, a message at a time.

        Subclasses may apply a whole batch in one transaction (analytics does, for
        ingest throughput) as long as each event is still deduplicated by the inbox.
        """
        for msg in msgs:
            try:
                await self.handle(msg)
            except Exception:
                log.exception("%s: message left unacked (redelivered after ack_wait)", self.name)

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current fetch."""
        self._stop.set()

    def _stopping(self, stop: asyncio.Event) -> bool:
        return stop.is_set() or self._stop.is_set()

    async def _check_consumer(self) -> None:
        try:
            await self._js.consumer_info(self.stream, self.name)
        except NotFoundError:
            log.warning("%s: consumer vanished from the server; re-creating", self.name)
            await self.close()
        except Exception as exc:
            log.debug("consumer check failed: %r", exc)

    async def _backoff_sleep(self, stop: asyncio.Event, failures: int, why: str) -> None:
        delay = min(30.0, 0.5 * 2 ** (failures - 1))
        log.warning("%s: %s; retrying in %.1fs", self.name, why, delay)
        await wait_any((stop, self._stop), delay)
