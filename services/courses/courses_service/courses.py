"""A course's life: created as a draft, edited, published, unpublished, deleted (softly).

``course.published.v1`` is a full snapshot of a published course: price, title and
its lessons in order (with media ids, durations and — bounded — their text). It is
sent when a course is published and again whenever the title, price, currency or
lessons of a published course change, so the payments service charges the current
price, the media service knows which media a course shows, and the tutor indexes the
current text. ``course.unpublished.v1`` is sent when a published course is unpublished
or deleted.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from courses_service.access import parse_course_ref
from courses_service.cache import touch_course
from courses_service.enrollments import revoke_course_enrollments
from courses_service.models import (
    ACTIVE,
    categories,
    courses,
    enrollments,
    lessons,
    outbox,
    sections,
)
from courses_service.text import slugify
from unpuzzle_common.errors import Conflict, ValidationFailed
from unpuzzle_common.events.outbox import add_event
from unpuzzle_common.events.schemas import CoursePublished, CourseUnpublished, PublishedLesson

SOURCE = "courses"
_SLUG_ATTEMPTS = 5


async def _check_category(session: AsyncSession, category_id: uuid.UUID | None) -> None:
    if category_id is None:
        return
    found = await session.execute(select(categories.c.id).where(categories.c.id == category_id))
    if found.first() is None:
        raise ValidationFailed.field("category_id", "unknown category")


async def _free_slug(session: AsyncSession, base: str) -> str:
    """``base``, or ``base-2``, ``base-3`` … whichever is not taken yet."""
    taken = set(
        (
            await session.execute(
                select(courses.c.slug).where(
                    or_(courses.c.slug == base, courses.c.slug.like(f"{base}-%"))
                )
            )
        ).scalars()
    )
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


async def create_course(
    session: AsyncSession,
    *,
    instructor_id: uuid.UUID,
    title: str,
    description: str,
    price: int,
    currency: str,
    category_id: uuid.UUID | None,
    course_id: uuid.UUID | None = None,
) -> Any:
    """A new draft with a unique slug made from its title."""
    await _check_category(session, category_id)
    course_id = course_id or uuid.uuid4()
    # Enrollments paid for before the course was known here count from the start.
    enrolled = (
        await session.execute(
            select(func.count())
            .select_from(enrollments)
            .where(enrollments.c.course_id == course_id, enrollments.c.status == ACTIVE)
        )
    ).scalar_one()
    base = slugify(title)
    if isinstance(parse_course_ref(base), uuid.UUID):
        base += "-course"  # a slug must never be mistaken for an id
    for _ in range(_SLUG_ATTEMPTS):
        slug = await _free_slug(session, base)
        try:
            # A concurrent create may take the same slug: retry with the next one.
            async with session.begin_nested():
                row = (
                    await session.execute(
                        insert(courses)
                        .values(
                            id=course_id,
                            title=title,
                            slug=slug,
                            description=description,
                            instructor_id=instructor_id,
                            category_id=category_id,
                            price=price,
                            currency=currency,
                            enrollment_count=enrolled,
                        )
                        .returning(courses)
                    )
                ).one()
        except IntegrityError:
            continue
        touch_course(session, row.id)
        return row
    raise Conflict("Could not find a free slug for this title; try again.")


#: Lesson text carried by a snapshot: per lesson, and for the whole course (a NATS
#: message must stay well below its 1 MB limit). Beyond the budget, ``content`` is null.
SNAPSHOT_LESSON_TEXT = 8_000
SNAPSHOT_COURSE_TEXT = 400_000


async def course_snapshot(session: AsyncSession, course: Any) -> CoursePublished:
    """The ``course.published.v1`` snapshot of a course as this transaction sees it."""
    rows = await session.execute(
        select(lessons)
        .join(sections, sections.c.id == lessons.c.section_id)
        .where(lessons.c.course_id == course.id)
        .order_by(sections.c.position, lessons.c.position)
    )
    budget = SNAPSHOT_COURSE_TEXT
    published: list[PublishedLesson] = []
    for lesson in rows:
        text = lesson.content[:SNAPSHOT_LESSON_TEXT]
        budget -= len(text)
        published.append(
            PublishedLesson(
                lesson_id=lesson.id,
                section_id=lesson.section_id,
                title=lesson.title,
                position=lesson.position,
                media_id=lesson.media_id,
                duration_seconds=lesson.duration_seconds,
                content=text if budget >= 0 else None,
            )
        )
    return CoursePublished(
        course_id=course.id,
        instructor_id=course.instructor_id,
        price=course.price,
        currency=course.currency,
        title=course.title,
        lessons=published,
    )


async def announce_if_published(session: AsyncSession, course_id: uuid.UUID) -> None:
    """Send a fresh ``course.published.v1`` snapshot if the course is published."""
    course = (await session.execute(select(courses).where(courses.c.id == course_id))).first()
    if course is not None and course.is_published and course.deleted_at is None:
        await add_event(session, outbox, await course_snapshot(session, course), source=SOURCE)


async def _announce_unpublished(session: AsyncSession, course: Any) -> None:
    await add_event(
        session,
        outbox,
        CourseUnpublished(
            course_id=course.id,
            instructor_id=course.instructor_id,
            price=course.price,
            currency=course.currency,
        ),
        source=SOURCE,
    )


async def update_course(session: AsyncSession, course: Any, changes: dict[str, Any]) -> Any:
    """Apply the given changes (the course row is locked by the caller)."""
    if "category_id" in changes:
        await _check_category(session, changes["category_id"])
    changed = {k: v for k, v in changes.items() if getattr(course, k) != v}
    if not changed:
        return course
    row = (
        await session.execute(
            update(courses)
            .where(courses.c.id == course.id)
            .values(**changed, updated_at=func.now())
            .returning(courses)
        )
    ).one()
    if row.is_published and {"title", "price", "currency"} & changed.keys():
        await announce_if_published(session, row.id)
    touch_course(session, row.id)
    return row


async def publish_course(session: AsyncSession, course: Any) -> Any:
    """Make a draft visible to everyone; it needs at least one lesson. Idempotent."""
    if course.is_published:
        return course
    if course.lesson_count < 1:
        raise Conflict(
            "A course needs at least one lesson before it can be published.",
            errors=[{"field": "lessons", "message": "at least one lesson is required"}],
        )
    row = (
        await session.execute(
            update(courses)
            .where(courses.c.id == course.id)
            .values(is_published=True, published_at=func.now(), updated_at=func.now())
            .returning(courses)
        )
    ).one()
    await add_event(session, outbox, await course_snapshot(session, row), source=SOURCE)
    touch_course(session, row.id)
    return row


async def unpublish_course(session: AsyncSession, course: Any) -> Any:
    """Take a course back to draft (enrolled students keep seeing it). Idempotent."""
    if not course.is_published:
        return course
    row = (
        await session.execute(
            update(courses)
            .where(courses.c.id == course.id)
            .values(is_published=False, updated_at=func.now())
            .returning(courses)
        )
    ).one()
    await _announce_unpublished(session, row)
    touch_course(session, row.id)
    return row


async def delete_course(session: AsyncSession, course: Any) -> None:
    """Soft delete: the row stays (enrollments and payments refer to it), nobody sees it.

    Its enrollments are revoked (``enrollment.revoked.v1`` with reason
    ``course_deleted``), so the services that grant access through them — lesson
    media, the tutor — stop doing so too.
    """
    await session.execute(
        update(courses)
        .where(courses.c.id == course.id)
        .values(deleted_at=func.now(), is_published=False, updated_at=func.now())
    )
    if course.is_published:
        await _announce_unpublished(session, course)
    await revoke_course_enrollments(session, course.id, reason="course_deleted")
    touch_course(session, course.id)
