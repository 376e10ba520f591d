"""Rebuilding every derived table from the facts gives exactly what ingestion built."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete

from analytics_service.cli import main
from analytics_service.ingestion import rebuild_from_facts
from analytics_service.models import DERIVED_TABLES
from unpuzzle_common.db import transaction
from unpuzzle_common.events import schemas as s
from unpuzzle_common.events.envelope import Envelope


async def rebuild(sessions) -> int:
    async with transaction(sessions) as session:
        return await rebuild_from_facts(session)


async def test_rebuild_equals_incremental_for_the_scripted_stream(
    deliver, scenario, sessions, snapshot
):
    await deliver(scenario.stream)
    incremental = await snapshot()

    await rebuild(sessions)

    assert all(incremental.values())  # every derived table has rows to compare
    assert await snapshot() == incremental


def random_stream(make_envelope, seed: int = 7, n: int = 1500) -> list[Envelope]:
    """Events of every kind over 20 days, 10 % redelivered, in shuffled (late) order."""
    rnd = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    users = [uuid.uuid4() for _ in range(30)]
    course_ids = [uuid.uuid4() for _ in range(4)]
    currency = dict(zip(course_ids, ["usd", "usd", "eur", "gbp"], strict=True))
    payments: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]] = []

    def at() -> datetime:
        return start + timedelta(seconds=rnd.randrange(20 * 86400))

    def one() -> s.EventData:
        user, course = rnd.choice(users), rnd.choice(course_ids)
        kind = rnd.randrange(12)
        if kind == 0:
            return s.CoursePublished(
                course_id=course,
                instructor_id=uuid.UUID(int=course.int ^ 1),
                price=rnd.randrange(100, 5000),
                currency=currency[course],
                title=rnd.choice([None, f"Title {rnd.randrange(9)}"]),
            )
        if kind == 1:
            payment = uuid.uuid4()
            payments.append((payment, user, course))
            return s.PaymentSucceeded(
                payment_id=payment,
                user_id=user,
                course_id=course,
                amount=rnd.randrange(100, 5000),
                currency=currency[course],
            )
        if kind == 2 and payments:
            payment, user, course = rnd.choice(payments)
            return s.PaymentRefunded(
                payment_id=payment,
                user_id=user,
                course_id=course,
                amount=rnd.randrange(1, 100),
                currency=rnd.choice([None, currency[course]]),
            )
        if kind in (3, 4):
            model = s.EnrollmentCreated if kind == 3 else s.EnrollmentRevoked
            return model(enrollment_id=uuid.uuid4(), user_id=user, course_id=course, source="free")
        if kind in (5, 6, 7):
            return s.LessonCompleted(user_id=user, course_id=course, lesson_id=uuid.uuid4())
        if kind == 8:
            return s.ReviewCreated(course_id=course, user_id=user, rating=rnd.randrange(1, 6))
        if kind == 9:
            return s.AiUsageRecorded(
                user_id=user,
                tokens=rnd.randrange(500),
                cost_micro_usd=rnd.randrange(9000),
                agent="chat",
            )
        if kind == 10:
            return s.CourseCompleted(user_id=user, course_id=course)
        return rnd.choice(
            [
                s.UserRegistered(user_id=user, email="x@example.com", full_name="X", roles=[]),
                s.SubscriptionActivated(user_id=user, plan="pro", ai_daily_limit=100),
                s.SubscriptionCanceled(user_id=user, plan="pro"),
                s.MediaUploaded(media_id=uuid.uuid4(), owner_id=user, content_type="video/mp4"),
            ]
        )

    stream = [make_envelope(one(), at()) for _ in range(n)]
    stream += rnd.sample(stream, n // 10)
    rnd.shuffle(stream)
    return stream


async def test_rebuild_equals_incremental_for_a_random_stream_applied_in_batches(
    consumer_for, make_envelope, sessions, snapshot, settings, monkeypatch
):
    stream = random_stream(make_envelope)
    consumers = {}
    for start in range(0, len(stream), 100):
        by_source: dict[str, list[Envelope]] = {}
        for env in stream[start : start + 100]:
            by_source.setdefault(env.source, []).append(env)
        for source, envelopes in by_source.items():
            consumer = consumers.setdefault(source, consumer_for(source))
            await consumer.apply_batch(envelopes)
    incremental = await snapshot()
    async with transaction(sessions) as session:  # as if the rollups were lost
        for table in DERIVED_TABLES:
            await session.execute(delete(table))

    monkeypatch.setenv("ANALYTICS_DATABASE_URL", settings.database_url)
    await asyncio.to_thread(main, ["rebuild"])

    assert await snapshot() == incremental
