"""Keeping ``position`` dense (0, 1, 2 …) inside a scope while items come, go and move.

Sections are ordered within their course and lessons within their section. The unique
(scope, position) constraints are ``DEFERRABLE INITIALLY DEFERRED``, so the shifts
below may pass through duplicate positions; the constraint is checked at commit, when
the order is dense again. Callers hold the course row lock (see
:func:`courses_service.access.course_for_edit`), so two reorders never interleave.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession


async def count_in(session: AsyncSession, table: Table, scope: str, scope_id: uuid.UUID) -> int:
    """How many items the scope holds."""
    return (
        await session.execute(
            select(func.count()).select_from(table).where(table.c[scope] == scope_id)
        )
    ).scalar_one()


async def open_gap(
    session: AsyncSession, table: Table, scope: str, scope_id: uuid.UUID, at: int
) -> None:
    """Shift items at ``at`` and after one place down, freeing position ``at``."""
    await session.execute(
        update(table)
        .where(table.c[scope] == scope_id, table.c.position >= at)
        .values(position=table.c.position + 1)
    )


async def close_gap(
    session: AsyncSession, table: Table, scope: str, scope_id: uuid.UUID, at: int
) -> None:
    """Shift items after ``at`` one place up (after the item at ``at`` left)."""
    await session.execute(
        update(table)
        .where(table.c[scope] == scope_id, table.c.position > at)
        .values(position=table.c.position - 1)
    )


async def move_within(
    session: AsyncSession,
    table: Table,
    scope: str,
    scope_id: uuid.UUID,
    item_id: uuid.UUID,
    old: int,
    new: int,
) -> None:
    """Move one item from ``old`` to ``new``; the items in between shift by one."""
    if new == old:
        return
    if new < old:
        shift = table.c.position.between(new, old - 1)
        moved = table.c.position + 1
    else:
        shift = table.c.position.between(old + 1, new)
        moved = table.c.position - 1
    await session.execute(
        update(table).where(table.c[scope] == scope_id, shift).values(position=moved)
    )
    await session.execute(update(table).where(table.c.id == item_id).values(position=new))


def clamp(position: int | None, size: int) -> int:
    """A requested position within ``0..size`` (``None`` or beyond the end: the end)."""
    if position is None or position > size:
        return size
    return max(0, position)
