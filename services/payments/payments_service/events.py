"""The events this service consumes, and the consumers that apply them.

Both come from the courses service's stream. nats-server 2.9 allows one filter
subject per durable consumer, so there is one consumer per event domain:

=====================  =======================  ==========================================
consumer               stream / filter          events → effect
=====================  =======================  ==========================================
payments-courses       COURSES ``course.>``     course.published.v1 / course.unpublished.v1
                                                → the course read model (price, visibility)
payments-enrollments   COURSES ``enrollment.>`` enrollment.created.v1 / enrollment.revoked.v1
                                                → who already has access
=====================  =======================  ==========================================

The events it publishes (payment.*, subscription.*) are written by the domain
modules through the outbox; the worker's relay publishes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payments_service.catalog import apply_course, apply_enrollment
from payments_service.models import inbox
from unpuzzle_common.events.consumer import EventConsumer, EventRouter
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.jetstream import ensure_service_stream, stream_name
from unpuzzle_common.events.schemas import (
    CoursePublished,
    CourseUnpublished,
    EnrollmentCreated,
    EnrollmentRevoked,
)

courses_router = EventRouter()
enrollments_router = EventRouter()


@courses_router.on(CoursePublished)
async def on_course_published(
    session: AsyncSession, data: CoursePublished, envelope: Envelope
) -> None:
    await apply_course(session, data, published=True, event_time=envelope.time)


@courses_router.on(CourseUnpublished)
async def on_course_unpublished(
    session: AsyncSession, data: CourseUnpublished, envelope: Envelope
) -> None:
    await apply_course(session, data, published=False, event_time=envelope.time)


@enrollments_router.on(EnrollmentCreated)
async def on_enrollment_created(
    session: AsyncSession, data: EnrollmentCreated, envelope: Envelope
) -> None:
    await apply_enrollment(session, data, active=True, event_time=envelope.time)


@enrollments_router.on(EnrollmentRevoked)
async def on_enrollment_revoked(
    session: AsyncSession, data: EnrollmentRevoked, envelope: Envelope
) -> None:
    await apply_enrollment(session, data, active=False, event_time=envelope.time)


@dataclass(frozen=True)
class Subscription:
    """One consumer of this service: its durable name, the producer, the domain, the router."""

    name: str
    producer: str
    domain: str
    router: EventRouter


SUBSCRIPTIONS: tuple[Subscription, ...] = (
    Subscription("payments-courses", "courses", "course", courses_router),
    Subscription("payments-enrollments", "courses", "enrollment", enrollments_router),
)


class PaymentsConsumer(EventConsumer):
    """An :class:`EventConsumer` that makes sure the producer's stream exists before
    binding, so this worker may start before the courses service ever ran (the stream
    setup is idempotent and the producer applies the same configuration)."""

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
            f"{prefix}.{subscription.domain}.>",
            subscription.router,
            service="payments",
            **options,  # type: ignore[arg-type]
        )
        self._producer = subscription.producer
        self._stream_prefix = prefix

    async def start(self) -> None:
        await ensure_service_stream(self._js, self._stream_prefix, self._producer)
        await super().start()

    async def apply(self, envelope: Envelope) -> bool:
        """Apply one event exactly once (inbox + handler in one transaction)."""
        return await self._apply(envelope)


def build_consumers(
    js: JetStreamContext,
    sessions: async_sessionmaker[AsyncSession],
    *,
    prefix: str,
    **options: object,
) -> Sequence[PaymentsConsumer]:
    """The service's consumers, one per consumed event domain."""
    return [PaymentsConsumer(js, sessions, sub, prefix=prefix, **options) for sub in SUBSCRIPTIONS]
