"""Who may see and who may change a course (the seed's row-level rules, in queries).

A live (not deleted) course is visible to a caller when it is published, or the caller
is its instructor, or the caller is actively enrolled in it, or the caller is an admin.
Anyone else is told the course does not exist (404). Only its instructor or an admin
changes a course; a caller who can see it but not change it gets 403.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, exists, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from courses_service.models import ACTIVE, courses, enrollments
from unpuzzle_common.auth import ADMIN, Principal
from unpuzzle_common.errors import Forbidden, NotFound
from unpuzzle_common.readpool import CompiledQuery, Fetch, compile_query, session_fetch

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


def enrolled_clause(user_id: Any) -> ColumnElement[bool]:
    """The course row has an active enrollment of ``user_id``."""
    return exists().where(
        enrollments.c.course_id == courses.c.id,
        enrollments.c.user_id == user_id,
        enrollments.c.status == ACTIVE,
    )


#: Who is asking, as far as visibility goes (see :func:`viewer_kind`).
PUBLIC, ADMIN_VIEWER, USER_VIEWER = "public", "admin", "user"


def viewer_kind(principal: Principal | None) -> str:
    """Anonymous callers see the public catalog; admins see every live course; anyone
    else also sees the courses they teach or are enrolled in."""
    if principal is None:
        return PUBLIC
    return ADMIN_VIEWER if principal.has_role(ADMIN) else USER_VIEWER


def visibility(kind: str, user_id: Any = None) -> ColumnElement[bool]:
    """The visibility rule for a :func:`viewer_kind` as a WHERE clause on ``courses``.

    ``user_id`` is the caller's id, or an expression standing for it (a ``bindparam``
    in statements compiled once and run for many callers).
    """
    alive = courses.c.deleted_at.is_(None)
    if kind == PUBLIC:
        return and_(alive, courses.c.is_published)
    if kind == ADMIN_VIEWER:
        return alive
    return and_(
        alive,
        or_(
            courses.c.is_published,
            courses.c.instructor_id == user_id,
            enrolled_clause(user_id),
        ),
    )


def visible_clause(principal: Principal | None) -> ColumnElement[bool]:
    """The visibility rule for this caller as a WHERE clause on ``courses``."""
    return visibility(viewer_kind(principal), principal.user_id if principal else None)


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


@lru_cache(maxsize=1)
def _enrolled_query() -> CompiledQuery:
    enrolled = select(true()).where(
        enrollments.c.user_id == bindparam("user_id", type_=enrollments.c.user_id.type),
        enrollments.c.course_id == bindparam("course_id", type_=enrollments.c.course_id.type),
        enrollments.c.status == ACTIVE,
    )
    return compile_query("is_enrolled", enrolled)


async def is_enrolled(fetch: Fetch, user_id: uuid.UUID, course_id: uuid.UUID) -> bool:
    """Whether the user holds an active enrollment. ``fetch``: the ReadPool's, or
    :func:`~unpuzzle_common.readpool.session_fetch` inside a transaction."""
    rows = await fetch(_enrolled_query(), {"user_id": user_id, "course_id": course_id})
    return bool(rows)


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
    enrolled = await is_enrolled(session_fetch(session), principal.user_id, row.id)
    if row.is_published or enrolled:
        raise Forbidden("Only the course's instructor or an admin may change it.")
    raise NotFound(COURSE_NOT_FOUND)
