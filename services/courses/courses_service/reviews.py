"""Reviews: one per enrolled student and course, rating 1-5, aggregates kept exact.

The course's ``rating_sum``/``rating_count`` change by one relative UPDATE in the
review's transaction; concurrent reviews queue on the course row and each adds its
own rating, so the aggregates never lose one (``rating_avg`` is a generated column).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from courses_service.access import is_enrolled
from courses_service.cache import touch_course
from courses_service.models import courses, outbox, reviews, users
from courses_service.schemas import Review, UserRef
from unpuzzle_common.errors import Conflict, Forbidden, ValidationFailed
from unpuzzle_common.events.outbox import add_event
from unpuzzle_common.events.schemas import ReviewCreated
from unpuzzle_common.pagination import Page, PageParams, encode_cursor
from unpuzzle_common.readpool import session_fetch

SOURCE = "courses"


async def create_review(
    session: AsyncSession, course: Any, user_id: uuid.UUID, *, rating: int, comment: str
) -> Review:
    if not await is_enrolled(session_fetch(session), user_id, course.id):
        raise Forbidden("Only students enrolled in this course may review it.")
    row = (
        await session.execute(
            insert(reviews)
            .values(
                id=uuid.uuid4(),
                course_id=course.id,
                user_id=user_id,
                rating=rating,
                comment=comment,
            )
            .on_conflict_do_nothing(index_elements=[reviews.c.course_id, reviews.c.user_id])
            .returning(reviews)
        )
    ).first()
    if row is None:
        raise Conflict(
            "You have already reviewed this course.",
            errors=[{"field": "course_id", "message": "already reviewed"}],
        )
    await session.execute(
        update(courses)
        .where(courses.c.id == course.id)
        .values(
            rating_sum=courses.c.rating_sum + rating,
            rating_count=courses.c.rating_count + 1,
        )
    )
    touch_course(session, course.id)
    await add_event(
        session,
        outbox,
        ReviewCreated(course_id=course.id, user_id=user_id, rating=rating, review_id=row.id),
        source=SOURCE,
    )
    name = (
        await session.execute(select(users.c.full_name).where(users.c.id == user_id))
    ).scalar_one_or_none()
    return _review_out(row, name)


async def list_reviews(
    session: AsyncSession, course_id: uuid.UUID, page: PageParams
) -> Page[Review]:
    """A course's reviews, newest first."""
    query = (
        select(reviews, users.c.full_name)
        .outerjoin(users, users.c.id == reviews.c.user_id)
        .where(reviews.c.course_id == course_id)
        .order_by(reviews.c.created_at.desc(), reviews.c.id.desc())
        .limit(page.limit + 1)
    )
    if page.after is not None:
        try:
            after = (datetime.fromisoformat(page.after["t"]), uuid.UUID(page.after["id"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationFailed.field("cursor", "not a valid cursor") from exc
        query = query.where(tuple_(reviews.c.created_at, reviews.c.id) < after)
    rows = list(await session.execute(query))
    items = [_review_out(r, r.full_name) for r in rows[: page.limit]]
    next_cursor = None
    if len(rows) > page.limit:
        last = rows[page.limit - 1]
        next_cursor = encode_cursor({"t": last.created_at.isoformat(), "id": str(last.id)})
    return Page[Review](items=items, next_cursor=next_cursor)


def _review_out(row: Any, full_name: str | None) -> Review:
    return Review(
        id=row.id,
        course_id=row.course_id,
        user=UserRef(id=row.user_id, full_name=full_name),
        rating=row.rating,
        comment=row.comment,
        created_at=row.created_at,
    )
