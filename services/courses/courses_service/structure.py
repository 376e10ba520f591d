"""Sections and lessons of a course: adding, changing, reordering, removing.

Every function here takes the course row already locked by
:func:`courses_service.access.course_for_edit`. The course's ``lesson_count`` and
``total_duration`` are recomputed under that lock after each change.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from courses_service import ordering
from courses_service.cache import touch_course
from courses_service.courses import announce_if_published
from courses_service.models import courses, lessons, media_durations, sections
from unpuzzle_common.errors import Conflict, NotFound
from unpuzzle_common.events.schemas import MediaProcessed

SECTION_NOT_FOUND = "No such section in this course."
LESSON_NOT_FOUND = "No such lesson in this course."


async def refresh_course_totals(session: AsyncSession, course_id: uuid.UUID) -> Any:
    """Recompute the course's lesson count and total duration; returns the course row."""
    count = select(func.count()).select_from(lessons).where(lessons.c.course_id == course_id)
    duration = select(func.coalesce(func.sum(lessons.c.duration_seconds), 0)).where(
        lessons.c.course_id == course_id
    )
    row = (
        await session.execute(
            update(courses)
            .where(courses.c.id == course_id)
            .values(
                lesson_count=count.scalar_subquery(),
                total_duration=duration.scalar_subquery(),
                updated_at=func.now(),
            )
            .returning(courses)
        )
    ).one()
    touch_course(session, course_id)
    return row


async def _lessons_changed(session: AsyncSession, course_id: uuid.UUID) -> None:
    """After any change to a course's lessons: totals, the published-course rule, snapshot."""
    course = await refresh_course_totals(session, course_id)
    if course.is_published and course.lesson_count == 0:
        raise Conflict(
            "A published course keeps at least one lesson; unpublish it first.",
            errors=[{"field": "lessons", "message": "the last lesson of a published course"}],
        )
    await announce_if_published(session, course_id)


# -- sections -----------------------------------------------------------------------------


async def _section(session: AsyncSession, course_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    row = (
        await session.execute(
            select(sections).where(sections.c.id == section_id, sections.c.course_id == course_id)
        )
    ).first()
    if row is None:
        raise NotFound(SECTION_NOT_FOUND)
    return row


async def add_section(
    session: AsyncSession, course: Any, *, title: str, position: int | None
) -> Any:
    size = await ordering.count_in(session, sections, "course_id", course.id)
    at = ordering.clamp(position, size)
    await ordering.open_gap(session, sections, "course_id", course.id, at)
    row = (
        await session.execute(
            insert(sections)
            .values(id=uuid.uuid4(), course_id=course.id, title=title, position=at)
            .returning(sections)
        )
    ).one()
    touch_course(session, course.id)
    return row


async def update_section(
    session: AsyncSession, course: Any, section_id: uuid.UUID, changes: dict[str, Any]
) -> Any:
    """Rename and/or move a section (``position`` beyond the end moves it last)."""
    section = await _section(session, course.id, section_id)
    if changes.get("position") is not None:
        size = await ordering.count_in(session, sections, "course_id", course.id)
        new = min(ordering.clamp(changes["position"], size), size - 1)
        await ordering.move_within(
            session, sections, "course_id", course.id, section.id, section.position, new
        )
    values: dict[str, Any] = {"updated_at": func.now()}
    if changes.get("title") is not None:
        values["title"] = changes["title"]
    row = (
        await session.execute(
            update(sections).where(sections.c.id == section.id).values(values).returning(sections)
        )
    ).one()
    touch_course(session, course.id)
    if row.position != section.position:
        await announce_if_published(session, course.id)  # the lessons' order changed
    return row


async def delete_section(session: AsyncSession, course: Any, section_id: uuid.UUID) -> None:
    """Remove a section and its lessons (refused if it would empty a published course)."""
    section = await _section(session, course.id, section_id)
    await session.execute(delete(sections).where(sections.c.id == section.id))
    await ordering.close_gap(session, sections, "course_id", course.id, section.position)
    await _lessons_changed(session, course.id)


async def section_lessons(session: AsyncSession, section_id: uuid.UUID) -> list[Any]:
    result = await session.execute(
        select(lessons).where(lessons.c.section_id == section_id).order_by(lessons.c.position)
    )
    return list(result)


# -- lessons ------------------------------------------------------------------------------


async def _lesson(
    session: AsyncSession, course_id: uuid.UUID, section_id: uuid.UUID, lesson_id: uuid.UUID
) -> Any:
    """The lesson, which must be in that section of that course (the path names both)."""
    row = (
        await session.execute(
            select(lessons).where(
                lessons.c.id == lesson_id,
                lessons.c.section_id == section_id,
                lessons.c.course_id == course_id,
            )
        )
    ).first()
    if row is None:
        raise NotFound(LESSON_NOT_FOUND)
    return row


async def known_media_duration(session: AsyncSession, media_id: uuid.UUID) -> int | None:
    """The duration ``media.processed.v1`` reported for this media, if it has arrived."""
    return (
        await session.execute(
            select(media_durations.c.duration_seconds).where(media_durations.c.media_id == media_id)
        )
    ).scalar_one_or_none()


async def add_lesson(
    session: AsyncSession, course: Any, section_id: uuid.UUID, fields: dict[str, Any]
) -> Any:
    section = await _section(session, course.id, section_id)
    duration = fields.get("duration_seconds")
    if duration is None and fields.get("media_id") is not None:
        duration = await known_media_duration(session, fields["media_id"])
    size = await ordering.count_in(session, lessons, "section_id", section.id)
    at = ordering.clamp(fields.get("position"), size)
    await ordering.open_gap(session, lessons, "section_id", section.id, at)
    row = (
        await session.execute(
            insert(lessons)
            .values(
                id=uuid.uuid4(),
                course_id=course.id,
                section_id=section.id,
                title=fields["title"],
                content=fields.get("content") or "",
                media_id=fields.get("media_id"),
                duration_seconds=duration,
                position=at,
            )
            .returning(lessons)
        )
    ).one()
    await _lessons_changed(session, course.id)
    return row


async def update_lesson(
    session: AsyncSession,
    course: Any,
    section_id: uuid.UUID,
    lesson_id: uuid.UUID,
    changes: dict[str, Any],
) -> Any:
    """Change a lesson; ``section_id``/``position`` move it (within or across sections)."""
    lesson = await _lesson(session, course.id, section_id, lesson_id)
    values: dict[str, Any] = {"updated_at": func.now()}
    for field in ("title", "content"):
        if changes.get(field) is not None:
            values[field] = changes[field]
    if "media_id" in changes:
        values["media_id"] = changes["media_id"]
        if changes["media_id"] != lesson.media_id and changes.get("duration_seconds") is None:
            # Another media: its own duration (when known) replaces the old one.
            values["duration_seconds"] = (
                await known_media_duration(session, changes["media_id"])
                if changes["media_id"] is not None
                else None
            )
    if changes.get("duration_seconds") is not None:
        values["duration_seconds"] = changes["duration_seconds"]

    target = changes.get("section_id") or lesson.section_id
    if target != lesson.section_id:
        await _section(session, course.id, target)
        await ordering.close_gap(session, lessons, "section_id", lesson.section_id, lesson.position)
        size = await ordering.count_in(session, lessons, "section_id", target)
        at = ordering.clamp(changes.get("position"), size)
        await ordering.open_gap(session, lessons, "section_id", target, at)
        values.update(section_id=target, position=at)
    elif changes.get("position") is not None:
        size = await ordering.count_in(session, lessons, "section_id", lesson.section_id)
        new = min(ordering.clamp(changes["position"], size), size - 1)
        await ordering.move_within(
            session, lessons, "section_id", lesson.section_id, lesson.id, lesson.position, new
        )
    row = (
        await session.execute(
            update(lessons).where(lessons.c.id == lesson.id).values(values).returning(lessons)
        )
    ).one()
    await _lessons_changed(session, course.id)
    return row


async def delete_lesson(
    session: AsyncSession, course: Any, section_id: uuid.UUID, lesson_id: uuid.UUID
) -> None:
    lesson = await _lesson(session, course.id, section_id, lesson_id)
    await session.execute(delete(lessons).where(lessons.c.id == lesson.id))
    await ordering.close_gap(session, lessons, "section_id", lesson.section_id, lesson.position)
    await _lessons_changed(session, course.id)


# -- media --------------------------------------------------------------------------------


async def record_media_duration(session: AsyncSession, media: MediaProcessed) -> None:
    """Apply ``media.processed.v1``: remember the duration, fill it into lessons using it."""
    if media.duration is None:
        return
    seconds = round(media.duration)
    await session.execute(
        pg_insert(media_durations)
        .values(media_id=media.media_id, owner_id=media.owner_id, duration_seconds=seconds)
        .on_conflict_do_update(
            index_elements=[media_durations.c.media_id],
            set_={"duration_seconds": seconds, "processed_at": func.now()},
        )
    )
    course_ids = (
        await session.execute(
            select(lessons.c.course_id).where(lessons.c.media_id == media.media_id).distinct()
        )
    ).scalars()
    for course_id in sorted(course_ids):
        # Lock the course as every other structural change does, then update its lessons.
        await session.execute(
            select(courses.c.id).where(courses.c.id == course_id).with_for_update()
        )
        await session.execute(
            update(lessons)
            .where(lessons.c.course_id == course_id, lessons.c.media_id == media.media_id)
            .values(duration_seconds=seconds, updated_at=func.now())
        )
        await _lessons_changed(session, course_id)
