"""Students' progress through a course: completed lessons, percentage, completion.

Completing a lesson is idempotent. The enrollment row is locked first, so two lessons
completed at the same moment cannot both miss that they finished the course, and
``course.completed.v1`` is written exactly once per enrollment (``completed_at``).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from courses_service.models import ACTIVE, enrollments, lesson_progress, lessons, outbox
from courses_service.schemas import Progress
from unpuzzle_common.errors import Forbidden, NotFound
from unpuzzle_common.events.outbox import add_event
from unpuzzle_common.events.schemas import CourseCompleted, LessonCompleted

SOURCE = "courses"


async def course_progress(
    session: AsyncSession, course_id: uuid.UUID, user_id: uuid.UUID
) -> Progress:
    """Which of the course's current lessons the user completed."""
    total = (
        await session.execute(
            select(func.count()).select_from(lessons).where(lessons.c.course_id == course_id)
        )
    ).scalar_one()
    done = list(
        (
            await session.execute(
                select(lesson_progress.c.lesson_id)
                .join(lessons, lessons.c.id == lesson_progress.c.lesson_id)
                .where(
                    lesson_progress.c.user_id == user_id,
                    lesson_progress.c.course_id == course_id,
                )
                .order_by(lesson_progress.c.completed_at, lesson_progress.c.lesson_id)
            )
        ).scalars()
    )
    completed_at = (
        await session.execute(
            select(enrollments.c.completed_at).where(
                enrollments.c.user_id == user_id, enrollments.c.course_id == course_id
            )
        )
    ).scalar_one_or_none()
    return Progress(
        course_id=course_id,
        completed_lesson_ids=done,
        total_lessons=total,
        percent=(100 * len(done) // total) if total else 0,
        completed_at=completed_at,
    )


async def complete_lesson(
    session: AsyncSession, course: Any, lesson_id: uuid.UUID, user_id: uuid.UUID
) -> Progress:
    """Mark a lesson completed by an enrolled student; emits the completion events."""
    enrollment = (
        await session.execute(
            select(enrollments)
            .where(
                enrollments.c.user_id == user_id,
                enrollments.c.course_id == course.id,
                enrollments.c.status == ACTIVE,
            )
            .with_for_update()
        )
    ).first()
    if enrollment is None:
        raise Forbidden("Only students enrolled in this course complete its lessons.")
    lesson = (
        await session.execute(
            select(lessons.c.id).where(lessons.c.id == lesson_id, lessons.c.course_id == course.id)
        )
    ).first()
    if lesson is None:
        raise NotFound("No such lesson in this course.")
    inserted = (
        await session.execute(
            insert(lesson_progress)
            .values(user_id=user_id, lesson_id=lesson_id, course_id=course.id)
            .on_conflict_do_nothing()
            .returning(lesson_progress.c.lesson_id)
        )
    ).first()
    if inserted is not None:
        await add_event(
            session,
            outbox,
            LessonCompleted(user_id=user_id, course_id=course.id, lesson_id=lesson_id),
            source=SOURCE,
        )
    progress = await course_progress(session, course.id, user_id)
    finished = progress.total_lessons > 0 and progress.percent == 100
    if finished and enrollment.completed_at is None:
        completed_at = (
            await session.execute(
                update(enrollments)
                .where(enrollments.c.id == enrollment.id)
                .values(completed_at=func.now(), updated_at=func.now())
                .returning(enrollments.c.completed_at)
            )
        ).scalar_one()
        await add_event(
            session,
            outbox,
            CourseCompleted(user_id=user_id, course_id=course.id, lesson_id=lesson_id),
            source=SOURCE,
        )
        progress = progress.model_copy(update={"completed_at": completed_at})
    return progress
