"""What this service knows about courses and enrollments, from the courses service's events.

A purchase needs the course's price and whether the buyer already has access. Both
come from read models fed by events, not from a call to the courses service, so a
purchase works while courses is slow or down; the price in the read model is at most
an event behind (≤ 2 s by the platform's promise). A course this service has not heard
of yet — never published, or published a moment ago — cannot be bought until its
course.published.v1 arrives.

Each write keeps the newest event: a row is only overwritten by an event at least as
recent as the one it reflects (redeliveries and out-of-order deliveries are harmless).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, cast, exists, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from payments_service.models import REFUNDED, SUCCEEDED, courses, enrollments, payments
from unpuzzle_common.events.schemas import (
    CoursePublished,
    CourseUnpublished,
    EnrollmentCreated,
    EnrollmentRevoked,
)


async def apply_course(
    session: AsyncSession,
    data: CoursePublished | CourseUnpublished,
    *,
    published: bool,
    event_time: datetime,
) -> bool:
    """Record a course's price and visibility; False when a newer event was applied."""
    values: dict[str, Any] = {
        "course_id": data.course_id,
        "instructor_id": data.instructor_id,
        "price": data.price,
        "currency": data.currency,
        "published": published,
        "event_time": event_time,
    }
    title = getattr(data, "title", None)
    if title is not None:
        values["title"] = title[:200]
    statement = insert(courses).values(**values)
    written = await session.execute(
        statement.on_conflict_do_update(
            index_elements=[courses.c.course_id],
            set_={k: statement.excluded[k] for k in values if k != "course_id"},
            where=courses.c.event_time <= statement.excluded.event_time,
        ).returning(courses.c.course_id)
    )
    return written.first() is not None


async def apply_enrollment(
    session: AsyncSession,
    data: EnrollmentCreated | EnrollmentRevoked,
    *,
    active: bool,
    event_time: datetime,
) -> bool:
    """Record whether a user has access to a course; False when a newer event was applied."""
    values = {
        "user_id": data.user_id,
        "course_id": data.course_id,
        "enrollment_id": data.enrollment_id,
        "source": data.source,
        "active": active,
        "event_time": event_time,
    }
    statement = insert(enrollments).values(**values)
    written = await session.execute(
        statement.on_conflict_do_update(
            index_elements=[enrollments.c.user_id, enrollments.c.course_id],
            set_={k: statement.excluded[k] for k in values if k not in ("user_id", "course_id")},
            where=enrollments.c.event_time <= statement.excluded.event_time,
        ).returning(enrollments.c.user_id)
    )
    return written.first() is not None


async def published_course(session: AsyncSession, course_id: uuid.UUID) -> Any | None:
    """The read-model row of a published course, or None (unknown or unpublished)."""
    row = (await session.execute(select(courses).where(courses.c.course_id == course_id))).first()
    return row if row is not None and row.published else None


async def owns_course(session: AsyncSession, user_id: uuid.UUID, course_id: uuid.UUID) -> bool:
    """Whether the user already has access to the course, or has paid for it.

    Access is an active enrollment (free or paid) as the courses service announced
    it — except one granted by a payment of ours that has since been refunded (its
    revocation may still be on its way) — or a payment of ours that succeeded and
    whose enrollment may not have been announced yet.
    """
    paid = exists().where(
        payments.c.user_id == user_id,
        payments.c.course_id == course_id,
        payments.c.status == SUCCEEDED,
    )
    refunded_source = exists().where(
        cast(payments.c.id, String) == enrollments.c.source,
        payments.c.status == REFUNDED,
    )
    enrolled = exists().where(
        and_(
            enrollments.c.user_id == user_id,
            enrollments.c.course_id == course_id,
            enrollments.c.active.is_(True),
            ~refunded_source,
        )
    )
    return bool((await session.execute(select(or_(paid, enrolled)))).scalar_one())
