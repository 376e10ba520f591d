"""The events this service consumes: who handles what, and the consumers that run them.

One durable consumer per producing stream and domain (nats-server 2.9 allows one
filter subject per consumer), each dispatching on the event type with an
:class:`EventRouter`:

==================  ==========================  =============================================
consumer            stream / filter             events
==================  ==========================  =============================================
media-processing    MEDIA ``media.uploaded.v1``  media.uploaded.v1 → processing queue
media-courses       COURSES ``course.>``         course.published.v1 / unpublished.v1 →
                                                 which lessons use which media
media-enrollments   COURSES ``enrollment.>``     enrollment.created.v1 / revoked.v1 →
                                                 who is enrolled where
==================  ==========================  =============================================

The events it publishes (``media.uploaded.v1``, ``media.processed.v1``) are written by
:mod:`media_service.uploads` and :mod:`media_service.processing` through the outbox.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from media_service.access import (
    apply_course_published,
    apply_course_unpublished,
    apply_enrollment,
)
from media_service.models import inbox
from media_service.processing import enqueue_processing
from unpuzzle_common.events import metrics
from unpuzzle_common.events.consumer import EventConsumer, EventRouter
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.jetstream import ensure_service_stream, stream_name
from unpuzzle_common.events.schemas import (
    CoursePublished,
    CourseUnpublished,
    EnrollmentCreated,
    EnrollmentRevoked,
    MediaUploaded,
)

processing_router = EventRouter()
courses_router = EventRouter()
enrollments_router = EventRouter()


@processing_router.on(MediaUploaded)
async def on_media_uploaded(session: AsyncSession, data: MediaUploaded, envelope: Envelope) -> None:
    await enqueue_processing(session, data.media_id)


@courses_router.on(CoursePublished)
async def on_course_published(
    session: AsyncSession, data: CoursePublished, envelope: Envelope
) -> None:
    await apply_course_published(session, data, event_time=envelope.time)


@courses_router.on(CourseUnpublished)
async def on_course_unpublished(
    session: AsyncSession, data: CourseUnpublished, envelope: Envelope
) -> None:
    await apply_course_unpublished(session, data, event_time=envelope.time)


@enrollments_router.on(EnrollmentCreated)
@enrollments_router.on(EnrollmentRevoked)
async def on_enrollment(
    session: AsyncSession, data: EnrollmentCreated | EnrollmentRevoked, envelope: Envelope
) -> None:
    await apply_enrollment(
        session,
        enrollment_id=data.enrollment_id,
        user_id=data.user_id,
        course_id=data.course_id,
        active=isinstance(data, EnrollmentCreated),
        event_time=envelope.time,
    )


@dataclass(frozen=True)
class Subscription:
    """One consumer of this service: its durable name, the producer and what it reads."""

    name: str
    producer: str
    #: Subject filter after the prefix, e.g. ``course.>``.
    filter: str
    router: EventRouter


SUBSCRIPTIONS: tuple[Subscription, ...] = (
    Subscription("media-processing", "media", "media.uploaded.v1", processing_router),
    Subscription("media-courses", "courses", "course.>", courses_router),
    Subscription("media-enrollments", "courses", "enrollment.>", enrollments_router),
)


class MediaConsumer(EventConsumer):
    """An :class:`EventConsumer` that makes sure the producer's stream exists before
    binding (the setup is idempotent and the producer applies the same configuration,
    so the worker may start before the courses service ever ran), and calls
    ``on_applied`` once an event's effect committed."""

    def __init__(
        self,
        js: JetStreamContext,
        sessions: async_sessionmaker[AsyncSession],
        subscription: Subscription,
        *,
        prefix: str,
        on_applied: Callable[[], None] | None = None,
        **options: object,
    ) -> None:
        self._producer = subscription.producer
        self._stream_prefix = prefix
        self._on_applied = on_applied
        super().__init__(
            js,
            sessions,
            inbox,
            subscription.name,
            stream_name(prefix, subscription.producer),
            f"{prefix}.{subscription.filter}",
            subscription.router,
            service="media",
            **options,  # type: ignore[arg-type]
        )

    async def start(self) -> None:
        await ensure_service_stream(self._js, self._stream_prefix, self._producer)
        await super().start()

    async def handle(self, msg: Msg) -> str:
        result = await super().handle(msg)
        if result == metrics.APPLIED and self._on_applied is not None:
            self._on_applied()
        return result


def build_consumers(
    js: JetStreamContext,
    sessions: async_sessionmaker[AsyncSession],
    *,
    prefix: str,
    on_upload: Callable[[], None] | None = None,
    max_deliver: int = 5,
) -> Sequence[MediaConsumer]:
    """The consumers of the media worker; ``on_upload`` wakes the processor."""
    return [
        MediaConsumer(
            js,
            sessions,
            sub,
            prefix=prefix,
            on_applied=on_upload if sub.router is processing_router else None,
            max_deliver=max_deliver,
        )
        for sub in SUBSCRIPTIONS
    ]
