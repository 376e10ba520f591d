"""Who may see and who may change a course (the seed's row-level rules, in queries).

A live (not deleted) course is visible to a caller when it is published, or the caller
is its instructor, or the caller is actively enrolled in it, or the caller is an admin.
Anyone else is told the course does not exist (404). Only its instructor or an admin
changes a course; a caller who can see it but not change it gets 403.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from courses_service.models import ACTIVE, courses, enrollments
from unpuzzle_common.auth import ADMIN, Principal
from unpuzzle_common.errors import Forbidden, NotFound

COURSE_NOT_FOUND = "No such course."


def parse_course_ref(ref: str) -> uuid.UUID | str:
    """A course is addressed by its id or its slug."""
    try:
        return uuid.UUID(ref)
    except ValueError:
        return ref.lower()


def ref_clause(ref: str) -> ColumnElement[bool]:
    parsed = parse_course_ref(ref)
    if isinstance(parsed, uuid.UUID):
        return courses.c.id == parsed
    if len(parsed) > courses.c.slug.type.length:
        return false()
    return courses.c.slug == parsed


def enrolled_clause(user_id: uuid.UUID) -> ColumnElement[bool]:
    """The course row has an active enrollment of ``user_id``."""
    return exists().where(
        enrollments.c.course_id == courses.c.id,
        enrollments.c.user_id == user_id,
        enrollments.c.status == ACTIVE,
    )


def visible_clause(principal: Principal | None) -> ColumnElement[bool]:
    """The visibility rule as a WHERE clause on ``courses``."""
    alive = courses.c.deleted_at.is_(None)
    if principal is None:
        return and_(alive, courses.c.is_published)
    if principal.has_role(ADMIN):
        return alive
    return and_(
        alive,
        or_(
            courses.c.is_published,
            courses.c.instructor_id == principal.user_id,
            enrolled_clause(principal.user_id),
        ),
    )


def can_edit(instructor_id: uuid.UUID, principal: Principal | None) -> bool:
    """Only the course's instructor or an admin changes it."""
    return principal is not None and (
        principal.has_role(ADMIN) or principal.user_id == instructor_id
    )


def has_full_access(instructor_id: uuid.UUID, principal: Principal | None, enrolled: bool) -> bool:
    """Whether the caller may read lesson contents (not only the outline)."""
    return enrolled or can_edit(instructor_id, principal)


def is_visible(
    *, is_published: bool, instructor_id: uuid.UUID, principal: Principal | None, enrolled: bool
) -> bool:
    """The visibility rule for a course already loaded (e.g. from the cache)."""
    return is_published or enrolled or can_edit(instructor_id, principal)


async def is_enrolled(session: AsyncSession, user_id: uuid.UUID, course_id: uuid.UUID) -> bool:
    row = await session.execute(
        select(true()).where(
            enrollments.c.user_id == user_id,
            enrollments.c.course_id == course_id,
            enrollments.c.status == ACTIVE,
        )
    )
    return row.first() is not None


async def visible_course(session: AsyncSession, ref: str, principal: Principal | None) -> Any:
    """The live course ``ref`` (id or slug) if the caller may see it; 404 otherwise."""
    row = (
        await session.execute(select(courses).where(ref_clause(ref), visible_clause(principal)))
    ).first()
    if row is None:
        raise NotFound(COURSE_NOT_FOUND)
    return row


async def course_for_edit(session: AsyncSession, ref: str, principal: Principal) -> Any:
    """The course, locked for this transaction, when the caller may change it.

    404 when the caller may not even see it, 403 when they may see but not change it.
    Every change to a course's content starts here, so changes to one course are
    serialised by its row lock (positions, totals and publish checks stay consistent).
    """
    row = (
        await session.execute(
            select(courses).where(ref_clause(ref), courses.c.deleted_at.is_(None)).with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound(COURSE_NOT_FOUND)
    if can_edit(row.instructor_id, principal):
        return row
    enrolled = await is_enrolled(session, principal.user_id, row.id)
    if row.is_published or enrolled:
        raise Forbidden("Only the course's instructor or an admin may change it.")
    raise NotFound(COURSE_NOT_FOUND)
