"""Handlers of the events the AI service consumes, and the consumers that feed them.

Read models kept here (each guarded by the event's time, so a late, older event never
undoes a newer one):

- ``courses``, ``course_lessons`` and lesson passages from course.published/unpublished.v1;
- ``enrollments`` from enrollment.created/revoked.v1;
- ``completed_lessons`` from lesson.completed.v1;
- transcript passages from media.processed.v1;
- ``plans`` (the daily limit) from subscription.activated/canceled.v1.

Published: ai.usage.recorded.v1 (see :func:`ai_service.usage.record_usage`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ai_service.models import (
    completed_lessons,
    course_lessons,
    courses,
    enrollments,
    inbox,
    plans,
)
from ai_service.passages import (
    drop_lessons,
    index_lesson,
    index_transcript,
    parse_transcript,
    segments_from_event,
)
from ai_service.settings import Settings
from unpuzzle_common.events.consumer import EventConsumer, EventRouter
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.jetstream import ensure_service_stream, stream_name
from unpuzzle_common.events.schemas import (
    CoursePublished,
    CourseUnpublished,
    EnrollmentCreated,
    EnrollmentRevoked,
    LessonCompleted,
    MediaProcessed,
    SubscriptionActivated,
    SubscriptionCanceled,
)

log = logging.getLogger(__name__)


def build_router(settings: Settings) -> EventRouter:
    """The handlers of every consumed event type (one router serves all consumers)."""
    router = EventRouter()
    passage_chars = settings.passage_chars

    @router.on(CoursePublished)
    async def course_published(
        session: AsyncSession, data: CoursePublished, envelope: Envelope
    ) -> None:
        if not await _upsert_course(session, data, envelope, published=True):
            return
        if data.lessons is not None:
            await _replace_lessons(session, data, passage_chars)

    @router.on(CourseUnpublished)
    async def course_unpublished(
        session: AsyncSession, data: CourseUnpublished, envelope: Envelope
    ) -> None:
        # Enrolled students and the instructor keep their tutor; the lessons stay indexed.
        await _upsert_course(session, data, envelope, published=False)

    @router.on(EnrollmentCreated)
    async def enrollment_created(
        session: AsyncSession, data: EnrollmentCreated, envelope: Envelope
    ) -> None:
        await _set_enrollment(session, data, envelope, active=True)

    @router.on(EnrollmentRevoked)
    async def enrollment_revoked(
        session: AsyncSession, data: EnrollmentRevoked, envelope: Envelope
    ) -> None:
        await _set_enrollment(session, data, envelope, active=False)

    @router.on(LessonCompleted)
    async def lesson_completed(
        session: AsyncSession, data: LessonCompleted, envelope: Envelope
    ) -> None:
        await session.execute(
            insert(completed_lessons)
            .values(
                user_id=data.user_id,
                lesson_id=data.lesson_id,
                course_id=data.course_id,
                completed_at=envelope.time,
            )
            .on_conflict_do_nothing()
        )

    @router.on(MediaProcessed)
    async def media_processed(
        session: AsyncSession, data: MediaProcessed, envelope: Envelope
    ) -> None:
        # Segments with times, when the producer sends them (an optional field beyond
        # today's schema), else cue timings found in the text (WebVTT/SRT), else plain.
        pieces = segments_from_event(envelope.data.get("transcript_segments"))
        if pieces is None:
            pieces = parse_transcript(data.transcript or "")
        count = await index_transcript(
            session, media_id=data.media_id, pieces=pieces, size=passage_chars
        )
        log.info("indexed transcript of media %s: %d passages", data.media_id, count)

    @router.on(SubscriptionActivated)
    async def subscription_activated(
        session: AsyncSession, data: SubscriptionActivated, envelope: Envelope
    ) -> None:
        await _set_plan(session, envelope, data.user_id, data.plan, data.ai_daily_limit, True)

    @router.on(SubscriptionCanceled)
    async def subscription_canceled(
        session: AsyncSession, data: SubscriptionCanceled, envelope: Envelope
    ) -> None:
        # The event's limit is the one that now applies; without one, the free plan's.
        await _set_plan(session, envelope, data.user_id, data.plan, data.ai_daily_limit, False)

    return router


async def _upsert_course(
    session: AsyncSession,
    data: CoursePublished | CourseUnpublished,
    envelope: Envelope,
    *,
    published: bool,
) -> bool:
    """Write the course row unless a newer event already did; True when written."""
    values = {
        "course_id": data.course_id,
        "instructor_id": data.instructor_id,
        "published": published,
        "event_time": envelope.time,
    }
    title = getattr(data, "title", None)
    if title is not None:
        values["title"] = title
    statement = insert(courses).values(**values)
    written = await session.execute(
        statement.on_conflict_do_update(
            index_elements=[courses.c.course_id],
            set_={k: statement.excluded[k] for k in values if k != "course_id"},
            where=courses.c.event_time <= statement.excluded.event_time,
        ).returning(courses.c.course_id)
    )
    return written.first() is not None


async def _replace_lessons(session: AsyncSession, data: CoursePublished, size: int) -> None:
    """Make the course's lessons (and their indexed text) those of the snapshot."""
    lessons = data.lessons or []
    current = {
        row.lesson_id: row.content_hash
        for row in await session.execute(
            select(course_lessons.c.lesson_id, course_lessons.c.content_hash).where(
                course_lessons.c.course_id == data.course_id
            )
        )
    }
    kept = {lesson.lesson_id for lesson in lessons}
    gone = [lesson_id for lesson_id in current if lesson_id not in kept]
    if gone:
        await session.execute(
            delete(course_lessons).where(
                course_lessons.c.course_id == data.course_id,
                course_lessons.c.lesson_id.in_(gone),
            )
        )
        await drop_lessons(session, gone)
    for index, lesson in enumerate(lessons):
        content_hash = hashlib.sha256((lesson.content or "").encode()).hexdigest()
        values = {
            "course_id": data.course_id,
            "lesson_id": lesson.lesson_id,
            "title": lesson.title,
            "position": lesson.position if lesson.position is not None else index,
            "media_id": lesson.media_id,
            "content_hash": content_hash,
        }
        statement = insert(course_lessons).values(**values)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[course_lessons.c.course_id, course_lessons.c.lesson_id],
                set_={
                    k: statement.excluded[k] for k in values if k not in ("course_id", "lesson_id")
                },
            )
        )
        if current.get(lesson.lesson_id) != content_hash:
            await index_lesson(
                session,
                course_id=data.course_id,
                lesson_id=lesson.lesson_id,
                content=lesson.content,
                size=size,
            )


async def _set_enrollment(
    session: AsyncSession,
    data: EnrollmentCreated | EnrollmentRevoked,
    envelope: Envelope,
    *,
    active: bool,
) -> None:
    statement = insert(enrollments).values(
        user_id=data.user_id,
        course_id=data.course_id,
        enrollment_id=data.enrollment_id,
        active=active,
        event_time=envelope.time,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[enrollments.c.user_id, enrollments.c.course_id],
            set_={
                "enrollment_id": statement.excluded.enrollment_id,
                "active": statement.excluded.active,
                "event_time": statement.excluded.event_time,
            },
            where=enrollments.c.event_time <= statement.excluded.event_time,
        )
    )


async def _set_plan(
    session: AsyncSession,
    envelope: Envelope,
    user_id,
    plan: str,
    limit: int | None,
    active: bool,
) -> None:
    statement = insert(plans).values(
        user_id=user_id, plan=plan, ai_daily_limit=limit, active=active, event_time=envelope.time
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[plans.c.user_id],
            set_={
                "plan": statement.excluded.plan,
                "ai_daily_limit": statement.excluded.ai_daily_limit,
                "active": statement.excluded.active,
                "event_time": statement.excluded.event_time,
            },
            where=plans.c.event_time <= statement.excluded.event_time,
        )
    )


#: Producing service → the subjects (on its stream) this service consumes there.
#: nats-server 2.9 allows one filter per consumer: the courses stream is consumed
#: whole (``<prefix>.>`` on it means course.*, enrollment.*, lesson.*, review.*;
#: the router ignores what it has no handler for).
CONSUMED = {
    "courses": ">",
    "media": "media.>",
    "payments": "subscription.>",
}


class ProducerStreamConsumer(EventConsumer):
    """A consumer on another service's stream that creates the stream if it is missing,
    so the AI worker can start before the producer (its relay applies the same config)."""

    def __init__(self, *args, producer: str, prefix: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._producer = producer
        self._events_prefix = prefix

    async def start(self) -> None:
        try:
            await self._js.stream_info(self.stream)
        except NotFoundError:
            await ensure_service_stream(self._js, self._events_prefix, self._producer)
        await super().start()


def build_consumers(
    settings: Settings, js: JetStreamContext, sessions: async_sessionmaker[AsyncSession]
) -> Sequence[EventConsumer]:
    """One durable consumer per producing stream, all dispatching to one router."""
    router = build_router(settings)
    prefix = settings.events_prefix
    return [
        ProducerStreamConsumer(
            js,
            sessions,
            inbox,
            f"ai-{producer}",
            stream_name(prefix, producer),
            f"{prefix}.{subjects}",
            router,
            max_deliver=settings.consumer_max_deliver,
            service="ai",
            producer=producer,
            prefix=prefix,
        )
        for producer, subjects in CONSUMED.items()
    ]
