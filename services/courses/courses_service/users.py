"""The users read model: names and roles of the platform's users, as auth announced them.

Fed by ``user.registered.v1`` and ``user.updated.v1`` (full snapshots). An event older
than the row (a redelivery overtaken by a later update) does not overwrite it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from courses_service.cache import touch_course
from courses_service.models import courses, users
from unpuzzle_common.events.schemas import UserRegistered, UserUpdated


async def apply_user_snapshot(
    session: AsyncSession, user: UserRegistered | UserUpdated, *, event_time: datetime
) -> None:
    """Upsert the user; a changed name retires the cached pages showing it."""
    previous = (
        await session.execute(select(users.c.full_name).where(users.c.id == user.user_id))
    ).scalar_one_or_none()
    values = {
        "email": user.email,
        "full_name": user.full_name[: users.c.full_name.type.length],
        "roles": sorted(user.roles),
        "event_time": event_time,
    }
    applied = (
        await session.execute(
            insert(users)
            .values(id=user.user_id, **values)
            .on_conflict_do_update(
                index_elements=[users.c.id],
                set_=values,
                where=users.c.event_time <= event_time,
            )
            .returning(users.c.full_name)
        )
    ).first()
    if applied is None or applied.full_name == previous:
        return
    taught = await session.execute(
        select(courses.c.id).where(courses.c.instructor_id == user.user_id)
    )
    for course_id in taught.scalars():
        touch_course(session, course_id)
