"""Which instructor owns which course: a read model fed by course.published/unpublished.v1.

course.published.v1 is re-emitted as a full snapshot whenever a published course
changes, so the newest event (by event time, ties broken by event id) wins; a late,
older one never overwrites it. ``title`` is optional in the snapshots: it has its own
"newest event that carried one". The same rule, written as one query, rebuilds the
table from the facts.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, case, delete, or_, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from analytics_service.facts import Fact
from analytics_service.models import courses
from unpuzzle_common.events.schemas import CoursePublished, CourseUnpublished

COURSE_EVENTS = (CoursePublished.event_type, CourseUnpublished.event_type)


@dataclass(frozen=True)
class CourseInfo:
    """What reports show about a course."""

    course_id: uuid.UUID
    instructor_id: uuid.UUID
    title: str | None
    currency: str
    is_published: bool


async def apply_course_facts(session: AsyncSession, batch: Sequence[Fact]) -> None:
    """Fold new course.* facts into the directory (newest event wins, per field group)."""
    events = sorted(
        (f for f in batch if f.type in COURSE_EVENTS), key=lambda f: (f.occurred_at, f.event_id)
    )
    for fact in events:  # one statement each: the same course may appear twice in a batch
        await session.execute(_upsert(fact))


_STATE = ("instructor_id", "price", "currency", "is_published", "state_time", "state_event_id")
_TITLE = ("title", "title_time", "title_event_id")


def _upsert(fact: Fact):
    title = fact.data.get("title")
    stmt = insert(courses).values(
        course_id=fact.course_id,
        instructor_id=fact.user_id,
        title=title,
        price=int(fact.data.get("price", 0)),
        currency=fact.currency,
        is_published=fact.type == CoursePublished.event_type,
        state_time=fact.occurred_at,
        state_event_id=fact.event_id,
        title_time=fact.occurred_at if title is not None else None,
        title_event_id=fact.event_id if title is not None else None,
    )
    new = stmt.excluded
    state_newer = tuple_(new.state_time, new.state_event_id) > tuple_(
        courses.c.state_time, courses.c.state_event_id
    )
    title_newer = and_(
        new.title.is_not(None),
        or_(
            courses.c.title_time.is_(None),
            tuple_(new.title_time, new.title_event_id)
            > tuple_(courses.c.title_time, courses.c.title_event_id),
        ),
    )
    set_ = {c: case((state_newer, new[c]), else_=courses.c[c]) for c in _STATE}
    set_.update({c: case((title_newer, new[c]), else_=courses.c[c]) for c in _TITLE})
    return stmt.on_conflict_do_update(
        index_elements=[courses.c.course_id], set_=set_, where=or_(state_newer, title_newer)
    )


_REBUILD = text(
    """
    INSERT INTO analytics.courses (course_id, instructor_id, title, price, currency,
                                   is_published, state_time, state_event_id,
                                   title_time, title_event_id)
    SELECT s.course_id, s.user_id, t.title, (s.data->>'price')::bigint, s.currency,
           s.type = :published, s.occurred_at, s.event_id, t.occurred_at, t.event_id
      FROM (SELECT DISTINCT ON (course_id) *
              FROM analytics.facts
             WHERE type IN (:published, :unpublished)
             ORDER BY course_id, occurred_at DESC, event_id DESC) AS s
      LEFT JOIN (SELECT DISTINCT ON (course_id) course_id, data->>'title' AS title,
                        occurred_at, event_id
                   FROM analytics.facts
                  WHERE type IN (:published, :unpublished) AND data->>'title' IS NOT NULL
                  ORDER BY course_id, occurred_at DESC, event_id DESC) AS t
             ON t.course_id = s.course_id
    """
).bindparams(published=CoursePublished.event_type, unpublished=CourseUnpublished.event_type)


async def rebuild_course_directory(session: AsyncSession) -> None:
    """Recompute the directory from the facts (the caller holds the facts lock)."""
    await session.execute(delete(courses))
    await session.execute(_REBUILD)


async def get_course(session: AsyncSession, course_id: uuid.UUID) -> CourseInfo | None:
    row = (await session.execute(select(courses).where(courses.c.course_id == course_id))).first()
    return _info(row) if row is not None else None


async def instructor_courses(session: AsyncSession, instructor_id: uuid.UUID) -> list[CourseInfo]:
    """The instructor's courses (published or not), by title."""
    rows = await session.execute(
        select(courses)
        .where(courses.c.instructor_id == instructor_id)
        .order_by(courses.c.title.nulls_last(), courses.c.course_id)
    )
    return [_info(row) for row in rows]


async def courses_by_id(
    session: AsyncSession, course_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, CourseInfo]:
    if not course_ids:
        return {}
    rows = await session.execute(select(courses).where(courses.c.course_id.in_(course_ids)))
    return {row.course_id: _info(row) for row in rows}


def _info(row) -> CourseInfo:
    return CourseInfo(
        course_id=row.course_id,
        instructor_id=row.instructor_id,
        title=row.title,
        currency=row.currency,
        is_published=row.is_published,
    )
