"""The consumers: one durable pull consumer per producing stream, every event type.

=====================  ===================  ==========================================
consumer               stream / filter      events
=====================  ===================  ==========================================
analytics-auth         AUTH ``user.>``      user.registered.v1, user.updated.v1
analytics-courses      COURSES ``>``        course.*, enrollment.*, lesson.completed.v1,
                                            course.completed.v1, review.created.v1
analytics-media        MEDIA ``media.>``    media.uploaded.v1, media.processed.v1
analytics-payments     PAYMENTS ``>``       payment.*, subscription.*
analytics-ai           AI ``ai.>``          ai.usage.recorded.v1
=====================  ===================  ==========================================

nats-server 2.9 gives a consumer one filter subject, so a stream holding several
domains is consumed whole (``<prefix>.>`` on it is exactly that stream's subjects).

Each consumer applies a fetched batch in **one transaction**: the inbox rows of the
batch (``ON CONFLICT DO NOTHING`` tells which events are new), the facts, the read
model and the rollups; then it acknowledges the messages. Deduplication stays per
event: a redelivered event finds its inbox row (and its fact) and adds nothing. When
the batch transaction fails, or an event is malformed, the batch falls back to the
one-event-per-transaction path of :class:`EventConsumer`, whose retries, backoff and
dead letters then apply to the failing event alone.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics_service.bulk import insert_rows, rows_param
from analytics_service.facts import Fact, fact_from
from analytics_service.ingestion import handle_event, ingest_facts
from analytics_service.models import inbox
from unpuzzle_common.events import metrics
from unpuzzle_common.events.consumer import EventConsumer, PoisonEvent
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.jetstream import (
    PRODUCED_DOMAINS,
    ensure_service_stream,
    stream_name,
)
from unpuzzle_common.events.tracing import tracer

log = logging.getLogger(__name__)

SERVICE = "analytics"

_INSERT_INBOX = insert_rows(
    inbox, ("consumer", "event_id"), "ON CONFLICT DO NOTHING RETURNING event_id"
)


@dataclass(frozen=True)
class Subscription:
    """One consumer of this service: its durable name and the stream it reads."""

    producer: str

    @property
    def name(self) -> str:
        return f"{SERVICE}-{self.producer}"

    def filter_subject(self, prefix: str) -> str:
        domains = PRODUCED_DOMAINS[self.producer]
        return f"{prefix}.{domains[0]}.>" if len(domains) == 1 else f"{prefix}.>"


#: Every producing service of the platform: analytics consumes everything.
SUBSCRIPTIONS: tuple[Subscription, ...] = tuple(Subscription(p) for p in PRODUCED_DOMAINS)


class AnalyticsConsumer(EventConsumer):
    """An :class:`EventConsumer` that applies each fetched batch in one transaction and
    creates the producer's stream if it is missing (so this worker may start first; the
    producer's relay applies the same stream configuration)."""

    def __init__(
        self,
        js: JetStreamContext,
        sessions: async_sessionmaker[AsyncSession],
        subscription: Subscription,
        *,
        prefix: str,
        **options: object,
    ) -> None:
        super().__init__(
            js,
            sessions,
            inbox,
            subscription.name,
            stream_name(prefix, subscription.producer),
            subscription.filter_subject(prefix),
            handle_event,
            service=SERVICE,
            **options,  # type: ignore[arg-type]
        )
        self._producer = subscription.producer
        self._events_prefix = prefix

    async def start(self) -> None:
        await ensure_service_stream(self._js, self._events_prefix, self._producer)
        await super().start()

    async def apply(self, envelope: Envelope) -> bool:
        """Apply one event exactly once (inbox + facts + rollups in one transaction).
        False when it was applied before."""
        return await self._apply(envelope)

    # -- batches ------------------------------------------------------------------------

    async def apply_batch(self, envelopes: Sequence[Envelope]) -> list[bool]:
        """Apply events in one transaction; per event, whether it was new.

        Raises :class:`PoisonEvent` (nothing applied) when one event's data is invalid.
        """
        return await self.apply_facts([fact_from(envelope) for envelope in envelopes])

    async def apply_facts(self, batch: Sequence[Fact]) -> list[bool]:
        """:meth:`apply_batch` for events already turned into facts (and so validated)."""
        async with self._sessions() as session, session.begin():
            fresh = await self._record_in_inbox(session, [f.event_id for f in batch])
            await ingest_facts(session, [f for f in batch if f.event_id in fresh])
        seen: set[uuid.UUID] = set()
        applied = []
        for fact in batch:
            applied.append(fact.event_id in fresh and fact.event_id not in seen)
            seen.add(fact.event_id)
        return applied

    async def _record_in_inbox(
        self, session: AsyncSession, event_ids: Sequence[uuid.UUID]
    ) -> set[uuid.UUID]:
        rows = ({"consumer": self.name, "event_id": i} for i in dict.fromkeys(event_ids))
        result = await session.execute(_INSERT_INBOX, rows_param(rows))
        return set(result.scalars())

    async def handle_batch(self, msgs: Sequence[Msg]) -> None:
        """Apply a fetched batch, then ack it; what cannot go in the batch goes one by one."""
        valid: list[tuple[Msg, Fact]] = []
        singles: list[Msg] = []
        for msg in msgs:
            try:
                fact = fact_from(Envelope.from_json(msg.data))
            except (ValueError, PoisonEvent):
                singles.append(msg)  # dead-lettered by the single-event path
                continue
            valid.append((msg, fact))
        if valid:
            with tracer().start_as_current_span(
                f"{self.filter_subject} process batch",
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "nats",
                    "messaging.operation.type": "process",
                    "messaging.consumer.group.name": self.name,
                    "messaging.batch.message_count": len(valid),
                },
            ):
                try:
                    applied = await self.apply_facts([fact for _, fact in valid])
                except Exception as exc:
                    log.warning(
                        "%s: batch of %d failed (%r); applying its events one by one",
                        self.name,
                        len(valid),
                        exc,
                    )
                    singles = [msg for msg, _ in valid] + singles
                else:
                    for (msg, _), new in zip(valid, applied, strict=True):
                        self._count(metrics.APPLIED if new else metrics.DUPLICATE)
                        await self._ack(msg)
        for msg in singles:
            await self.handle(msg)

    async def _ack(self, msg: Msg) -> None:
        # A plain ack (no round trip per message): the batch is committed, so an ack
        # lost on the way only means a redelivery, which the inbox turns into a no-op.
        try:
            await msg.ack()
        except Exception as exc:
            log.warning(
                "%s: ack failed (%r); the event will come back as a duplicate", self.name, exc
            )


def build_consumers(
    js: JetStreamContext,
    sessions: async_sessionmaker[AsyncSession],
    *,
    prefix: str,
    **options: object,
) -> list[AnalyticsConsumer]:
    """The service's consumers, one per producing stream."""
    return [AnalyticsConsumer(js, sessions, sub, prefix=prefix, **options) for sub in SUBSCRIPTIONS]
