"""The read models fed by the courses service's events: newest wins, applied once."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from payments_service.models import courses, enrollments
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.schemas import (
    CoursePublished,
    CourseUnpublished,
    EnrollmentCreated,
    EnrollmentRevoked,
)


def _course_event(model, course_id, *, price=4900, title=None) -> Envelope:
    data = {
        "course_id": course_id,
        "instructor_id": uuid.uuid4(),
        "price": price,
        "currency": "usd",
    }
    if title is not None:
        data["title"] = title
    return Envelope.new(model(**data), source="courses")


def _older(envelope: Envelope, seconds: int = 60) -> Envelope:
    return envelope.model_copy(
        update={"id": uuid.uuid4(), "time": envelope.time - timedelta(seconds=seconds)}
    )


async def _course(sessions, course_id):
    async with sessions() as session:
        query = select(courses).where(courses.c.course_id == course_id)
        return (await session.execute(query)).first()


async def test_a_published_course_is_known_with_its_price(deliver, sessions):
    course_id = uuid.uuid4()
    assert await deliver(_course_event(CoursePublished, course_id, price=2500, title="Go"))
    row = await _course(sessions, course_id)
    assert (row.price, row.currency, row.published, row.title) == (2500, "usd", True, "Go")


async def test_a_snapshot_updates_the_price_and_an_unpublish_hides_it(deliver, sessions):
    course_id = uuid.uuid4()
    await deliver(_course_event(CoursePublished, course_id, price=2500))
    await deliver(_course_event(CoursePublished, course_id, price=3000))
    assert (await _course(sessions, course_id)).price == 3000
    await deliver(_course_event(CourseUnpublished, course_id, price=3000))
    assert (await _course(sessions, course_id)).published is False


async def test_an_older_event_does_not_overwrite_a_newer_one(deliver, sessions):
    course_id = uuid.uuid4()
    unpublished = _course_event(CourseUnpublished, course_id)
    await deliver(unpublished)
    late = _older(_course_event(CoursePublished, course_id, price=1))
    late = late.model_copy(update={"time": unpublished.time - timedelta(seconds=5)})
    await deliver(late)
    row = await _course(sessions, course_id)
    assert row.published is False and row.price == 4900


async def test_a_redelivered_event_is_applied_once(deliver):
    envelope = _course_event(CoursePublished, uuid.uuid4())
    assert await deliver(envelope) is True
    assert await deliver(envelope) is False


async def test_enrollments_are_tracked_newest_first(deliver, sessions):
    user_id, course_id, enrollment_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    data = {
        "enrollment_id": enrollment_id,
        "user_id": user_id,
        "course_id": course_id,
        "source": "free",
    }
    created = Envelope.new(EnrollmentCreated(**data), source="courses")
    revoked = Envelope.new(EnrollmentRevoked(**data, reason="refund"), source="courses")
    await deliver(revoked)
    await deliver(created.model_copy(update={"time": revoked.time - timedelta(seconds=1)}))
    async with sessions() as session:
        row = (
            await session.execute(
                select(enrollments).where(
                    enrollments.c.user_id == user_id, enrollments.c.course_id == course_id
                )
            )
        ).one()
    assert row.active is False
