"""The consumers' handlers keep the read models; the worker applies and relays events."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import nats
from sqlalchemy import select

from ai_service.access import is_enrolled
from ai_service.events import build_router
from ai_service.models import completed_lessons, course_lessons, outbox, passages
from ai_service.retrieval import search
from ai_service.usage import daily_limit, record_usage
from ai_service.worker import run_worker
from unpuzzle_common.db import transaction
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.jetstream import ensure_service_stream
from unpuzzle_common.events.schemas import (
    CoursePublished,
    EnrollmentCreated,
    EnrollmentRevoked,
    LessonCompleted,
    MediaProcessed,
    PublishedLesson,
    SubscriptionActivated,
    SubscriptionCanceled,
)
from unpuzzle_common.testing import delete_streams_with_prefix


def _enrollment(model, user_id, course_id):
    return model(enrollment_id=uuid.uuid4(), user_id=user_id, course_id=course_id, source="free")


async def test_enrollment_created_then_revoked(ctx, apply_event):
    user, course = uuid.uuid4(), uuid.uuid4()
    await apply_event(_enrollment(EnrollmentCreated, user, course))
    async with ctx.sessions() as session:
        assert await is_enrolled(session, user, course)
    await apply_event(_enrollment(EnrollmentRevoked, user, course))
    async with ctx.sessions() as session:
        assert not await is_enrolled(session, user, course)


async def test_a_late_older_enrollment_event_does_not_undo_a_newer_one(ctx, apply_event):
    user, course = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    await apply_event(_enrollment(EnrollmentRevoked, user, course), at=now)
    await apply_event(_enrollment(EnrollmentCreated, user, course), at=now - timedelta(seconds=5))
    async with ctx.sessions() as session:
        assert not await is_enrolled(session, user, course)


async def test_subscription_sets_and_cancel_resets_the_daily_limit(ctx, apply_event):
    user = uuid.uuid4()
    free = ctx.settings.free_daily_limit
    await apply_event(SubscriptionActivated(user_id=user, plan="pro", ai_daily_limit=500))
    async with ctx.sessions() as session:
        assert await daily_limit(session, user, free_limit=free) == 500
    await apply_event(SubscriptionCanceled(user_id=user, plan="pro"))
    async with ctx.sessions() as session:
        assert await daily_limit(session, user, free_limit=free) == free


async def test_transcript_is_indexed_by_media_and_linked_when_a_lesson_shows_it(ctx, apply_event):
    media, course, lesson = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await apply_event(
        MediaProcessed(
            media_id=media,
            owner_id=uuid.uuid4(),
            content_type="video/mp4",
            transcript="A first processing, replaced by the next one.",
        )
    )
    # A producer may send timed segments as an optional field beyond today's schema.
    envelope = Envelope.new(
        MediaProcessed(
            media_id=media, owner_id=uuid.uuid4(), content_type="video/mp4", transcript="x"
        ),
        source="media",
    )
    envelope = envelope.model_copy(
        update={
            "data": {
                **envelope.data,
                "transcript_segments": [
                    {"start": 3.0, "end": 7.5, "text": "Mitochondria make ATP."},
                    {"start": 7.5, "end": 9.0, "text": "That is respiration."},
                ],
            }
        }
    )
    async with transaction(ctx.sessions) as session:
        await build_router(ctx.settings)(session, envelope)
    async with ctx.sessions() as session:
        rows = (await session.execute(select(passages).where(passages.c.media_id == media))).all()
    assert [(r.content, r.start_seconds, r.end_seconds) for r in rows] == [
        ("Mitochondria make ATP. That is respiration.", 3.0, 9.0)
    ]
    await apply_event(
        CoursePublished(
            course_id=course,
            instructor_id=uuid.uuid4(),
            price=0,
            currency="usd",
            lessons=[PublishedLesson(lesson_id=lesson, title="Energy", media_id=media)],
        )
    )
    async with ctx.sessions() as session:
        found = await search(session, course_id=course, query="mitochondria", limit=3)
    assert [(p.lesson_id, p.media_id, p.start_seconds) for p in found] == [(lesson, media, 3.0)]


async def test_republished_course_replaces_its_lessons_and_their_text(ctx, course, apply_event):
    await apply_event(
        CoursePublished(
            course_id=course.course_id,
            instructor_id=course.instructor_id,
            price=0,
            currency="usd",
            lessons=[
                PublishedLesson(
                    lesson_id=course.respiration,
                    title="Respiration, revised",
                    position=0,
                    content="Anaerobic respiration produces lactic acid.",
                )
            ],
        )
    )
    async with ctx.sessions() as session:
        lessons = (
            await session.execute(
                select(course_lessons.c.lesson_id, course_lessons.c.title).where(
                    course_lessons.c.course_id == course.course_id
                )
            )
        ).all()
        texts = (
            await session.scalars(
                select(passages.c.content).where(passages.c.course_id == course.course_id)
            )
        ).all()
    assert lessons == [(course.respiration, "Respiration, revised")]
    assert texts == ["Anaerobic respiration produces lactic acid."]


async def test_completed_lessons_are_recorded_once(ctx, course, apply_event):
    event = LessonCompleted(
        user_id=course.student_id, course_id=course.course_id, lesson_id=course.photosynthesis
    )
    await apply_event(event)
    await apply_event(event)
    async with ctx.sessions() as session:
        rows = (await session.execute(select(completed_lessons))).all()
    assert [(r.user_id, r.lesson_id) for r in rows] == [(course.student_id, course.photosynthesis)]


async def test_worker_applies_consumed_events_and_relays_usage(ctx, settings):
    """Through NATS: an enrollment on the courses stream reaches the read model, and a
    recorded usage leaves as ai.usage.recorded.v1 (the worker creates missing streams)."""
    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream()
    received: asyncio.Queue = asyncio.Queue()
    await nc.subscribe(f"{settings.events_prefix}.ai.usage.recorded.v1", cb=received.put)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop_event=stop))
    user, course = uuid.uuid4(), uuid.uuid4()
    try:
        await ensure_service_stream(js, settings.events_prefix, "courses")
        envelope = Envelope.new(_enrollment(EnrollmentCreated, user, course), source="courses")
        await js.publish(
            f"{settings.events_prefix}.{envelope.type}",
            envelope.to_json(),
            headers={"Nats-Msg-Id": str(envelope.id)},
        )
        async with transaction(ctx.sessions) as session:
            await record_usage(
                session, user_id=user, day=datetime.now(UTC).date(), tokens=12, cost=3, agent="hint"
            )
        message = await asyncio.wait_for(received.get(), timeout=15)
        assert json.loads(message.data)["data"] == {
            "user_id": str(user),
            "tokens": 12,
            "cost_micro_usd": 3,
            "agent": "hint",
        }
        for _ in range(150):
            async with ctx.sessions() as session:
                if await is_enrolled(session, user, course):
                    break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the enrollment never reached the read model")
        # The relay marks the row after the PubAck, so possibly after the message above
        # already arrived.
        for _ in range(100):
            async with ctx.sessions() as session:
                if await session.scalar(
                    select(outbox.c.published_at).where(outbox.c.type == "ai.usage.recorded.v1")
                ):
                    break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the relay never marked the usage event published")
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=15)
        await delete_streams_with_prefix(js, settings.events_prefix)
        await nc.close()
