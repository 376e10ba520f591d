"""Who may use the tutor on a course.

A course's tutor is for the students enrolled in it, its instructor and admins. What
this service knows of courses and enrollments comes from events (``course.*``,
``enrollment.*``), so access shows within the platform's event delay of the change.

Refusals follow DESIGN §3: a published course is public knowledge, so a student who is
not enrolled gets **403** (enroll first); an unknown or draft course answers **404**,
never revealing that it exists.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ai_service.models import courses, enrollments
from unpuzzle_common.auth import Principal
from unpuzzle_common.errors import Forbidden, NotFound


async def is_enrolled(session: AsyncSession, user_id: uuid.UUID, course_id: uuid.UUID) -> bool:
    """Whether the user holds an active enrollment in the course."""
    active = await session.scalar(
        select(enrollments.c.active).where(
            enrollments.c.user_id == user_id, enrollments.c.course_id == course_id
        )
    )
    return bool(active)


async def ensure_course_access(
    session: AsyncSession, principal: Principal, course_id: uuid.UUID
) -> None:
    """Raise unless the caller may use the tutor on ``course_id`` (see module doc)."""
    if principal.is_admin:
        return
    course = (
        await session.execute(
            select(courses.c.instructor_id, courses.c.published).where(
                courses.c.course_id == course_id
            )
        )
    ).first()
    if course is not None and course.instructor_id == principal.user_id:
        return
    if await is_enrolled(session, principal.user_id, course_id):
        return
    if course is not None and course.published:
        raise Forbidden("Enroll in this course to use its tutor.")
    raise NotFound("No such course.")
