"""Who may see a media file, and the read model that decides it for students.

A media file is visible to its owner, to admins, and to students enrolled in a course
whose lesson uses it (and to that course's instructor). Courses and enrollments belong
to the courses service; this service keeps a small copy fed by its events:

- ``enrollment.created.v1`` / ``enrollment.revoked.v1`` → ``enrollments`` (the latest
  event of each enrollment wins, so late or repeated deliveries cannot undo a newer state);
- ``course.published.v1`` (a full snapshot carrying ``lessons`` with their ``media_id``)
  → ``courses`` + ``course_lessons``; ``course.unpublished.v1`` keeps the lessons:
  students already enrolled keep access, as the courses service's visibility rule says.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from media_service.models import course_lessons, courses, enrollments
from unpuzzle_common.auth import Principal
from unpuzzle_common.events.schemas import CoursePublished, CourseUnpublished


async def can_view(session: AsyncSession, principal: Principal, media: Row[Any]) -> bool:
    """Whether ``principal`` may get ``media`` (and a signed URL to it)."""
    if media.owner_id == principal.user_id or principal.is_admin:
        return True
    enrolled = (
        select(course_lessons.c.course_id)
        .join(enrollments, enrollments.c.course_id == course_lessons.c.course_id)
        .where(
            course_lessons.c.media_id == media.id,
            enrollments.c.user_id == principal.user_id,
            enrollments.c.active.is_(True),
        )
    )
    teaches = (
        select(course_lessons.c.course_id)
        .join(courses, courses.c.course_id == course_lessons.c.course_id)
        .where(course_lessons.c.media_id == media.id, courses.c.instructor_id == principal.user_id)
    )
    return bool(await session.scalar(select(or_(exists(enrolled), exists(teaches)))))


def can_manage(principal: Principal, media: Row[Any]) -> bool:
    """Whether ``principal`` may delete ``media`` (its owner or an admin)."""
    return media.owner_id == principal.user_id or principal.is_admin


async def apply_enrollment(
    session: AsyncSession,
    *,
    enrollment_id: uuid.UUID,
    user_id: uuid.UUID,
    course_id: uuid.UUID,
    active: bool,
    event_time: datetime,
) -> None:
    """Record an enrollment's state unless a newer event already did."""
    values = {
        "user_id": user_id,
        "course_id": course_id,
        "active": active,
        "event_time": event_time,
    }
    stmt = pg_insert(enrollments).values(enrollment_id=enrollment_id, **values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[enrollments.c.enrollment_id],
            set_=values,
            where=enrollments.c.event_time <= stmt.excluded.event_time,
        )
    )


async def apply_course_published(
    session: AsyncSession, data: CoursePublished, *, event_time: datetime
) -> None:
    """Take a published course's snapshot: which lessons use which media."""
    if not await _newer_course_state(session, data, published=True, event_time=event_time):
        return
    if data.lessons is None:
        return  # a producer without the optional field: keep what we knew
    await session.execute(
        delete(course_lessons).where(course_lessons.c.course_id == data.course_id)
    )
    rows = [
        {"course_id": data.course_id, "lesson_id": lesson.lesson_id, "media_id": lesson.media_id}
        for lesson in data.lessons
        if lesson.media_id is not None
    ]
    if rows:
        await session.execute(insert(course_lessons), rows)


async def apply_course_unpublished(
    session: AsyncSession, data: CourseUnpublished, *, event_time: datetime
) -> None:
    await _newer_course_state(session, data, published=False, event_time=event_time)


async def _newer_course_state(
    session: AsyncSession,
    data: CoursePublished | CourseUnpublished,
    *,
    published: bool,
    event_time: datetime,
) -> bool:
    """Store the course's state if this event is newer; whether it was."""
    values = {"instructor_id": data.instructor_id, "published": published, "event_time": event_time}
    stmt = pg_insert(courses).values(course_id=data.course_id, **values)
    applied = await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[courses.c.course_id],
            set_=values,
            where=and_(courses.c.event_time <= stmt.excluded.event_time),
        ).returning(courses.c.course_id)
    )
    return applied.first() is not None
