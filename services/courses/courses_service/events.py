"""The events this service consumes: who handles what, and the consumers that run them.

One durable consumer per producing stream (nats-server 2.9 allows one filter subject
per consumer), each dispatching on the event type with an :class:`EventRouter`:

=================  ===================  ==================================================
consumer           stream / filter      events
=================  ===================  ==================================================
courses-users      AUTH ``user.>``      user.registered.v1, user.updated.v1 → users model
courses-payments   PAYMENTS             payment.succeeded.v1 → grant enrollment,
                   ``payment.>``        payment.refunded.v1 → revoke it
courses-media      MEDIA ``media.>``    media.processed.v1 → lesson durations
=================  ===================  ==================================================

The events it publishes are written by the domain modules through the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from courses_service.cache import CourseCache, Touched, touched_courses
from courses_service.enrollments import grant_paid_enrollment, revoke_paid_enrollment
from courses_service.models import inbox
from courses_service.structure import record_media_duration
from courses_service.users import apply_user_snapshot
from unpuzzle_common.events.consumer import EventConsumer, EventRouter
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.jetstream import ensure_service_stream, stream_name
from unpuzzle_common.events.schemas import (
    MediaProcessed,
    PaymentRefunded,
    PaymentSucceeded,
    UserRegistered,
    UserUpdated,
)

log = logging.getLogger(__name__)

users_router = EventRouter()
payments_router = EventRouter()
media_router = EventRouter()


@users_router.on(UserRegistered)
@users_router.on(UserUpdated)
async def on_user(session: AsyncSession, data: UserRegistered, envelope: Envelope) -> None:
    await apply_user_snapshot(session, data, event_time=envelope.time)


@payments_router.on(PaymentSucceeded)
async def on_payment_succeeded(
    session: AsyncSession, data: PaymentSucceeded, envelope: Envelope
) -> None:
    await grant_paid_enrollment(session, data)


@payments_router.on(PaymentRefunded)
async def on_payment_refunded(
    session: AsyncSession, data: PaymentRefunded, envelope: Envelope
) -> None:
    await revoke_paid_enrollment(session, data)


@media_router.on(MediaProcessed)
async def on_media_processed(
    session: AsyncSession, data: MediaProcessed, envelope: Envelope
) -> None:
    await record_media_duration(session, data)


@dataclass(frozen=True)
class Subscription:
    """One consumer of this service: its durable name, the producer and the router."""

    name: str
    producer: str
    domain: str
    router: EventRouter


SUBSCRIPTIONS: tuple[Subscription, ...] = (
    Subscription("courses-users", "auth", "user", users_router),
    Subscription("courses-payments", "payments", "payment", payments_router),
    Subscription("courses-media", "media", "media", media_router),
)


class CoursesConsumer(EventConsumer):
    """An :class:`EventConsumer` that also

    - makes sure the producer's stream exists before binding to it, so the worker can
      start before the producing service ever ran (the stream setup is idempotent and
      the producer applies the same configuration);
    - retires the cache entries of the courses an event changed, once it committed.
    """

    def __init__(
        self,
        js: JetStreamContext,
        sessions: async_sessionmaker[AsyncSession],
        subscription: Subscription,
        *,
        prefix: str,
        cache: CourseCache | None,
        **options: object,
    ) -> None:
        self._touched = Touched()
        self._cache = cache
        self._producer = subscription.producer
        router = subscription.router

        async def handler(session: AsyncSession, envelope: Envelope) -> None:
            await router(session, envelope)
            self._touched |= touched_courses(session)

        super().__init__(
            js,
            sessions,
            inbox,
            subscription.name,
            stream_name(prefix, subscription.producer),
            f"{prefix}.{subscription.domain}.>",
            handler,
            service="courses",
            **options,  # type: ignore[arg-type]
        )
        self._stream_prefix = prefix

    async def start(self) -> None:
        await ensure_service_stream(self._js, self._stream_prefix, self._producer)
        await super().start()

    async def apply(self, envelope: Envelope) -> bool:
        """Apply one event exactly once (inbox + handler in one transaction), then retire
        the cache entries of the courses it changed. False when it was applied before."""
        self._touched = Touched()
        applied = await super()._apply(envelope)
        if applied and self._touched and self._cache is not None:
            await self._cache.invalidate(self._touched)
        return applied

    async def _apply(self, envelope: Envelope) -> bool:
        # The base class's per-message step: ours adds the invalidation after the commit.
        return await self.apply(envelope)


def build_consumers(
    js: JetStreamContext,
    sessions: async_sessionmaker[AsyncSession],
    *,
    prefix: str,
    cache: CourseCache | None,
    **options: object,
) -> Sequence[CoursesConsumer]:
    """The service's consumers, one per producing stream."""
    return [
        CoursesConsumer(js, sessions, sub, prefix=prefix, cache=cache, **options)
        for sub in SUBSCRIPTIONS
    ]
