"""Categories of the catalog, managed by admins."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from courses_service.models import categories
from courses_service.text import slugify
from unpuzzle_common.errors import Conflict, ValidationFailed
from unpuzzle_common.pagination import PageParams


async def create_category(
    session: AsyncSession, *, name: str, slug: str | None, description: str
) -> Any:
    """A new category; 409 when its name or slug is taken."""
    row = (
        await session.execute(
            insert(categories)
            .values(
                id=uuid.uuid4(),
                name=name,
                slug=slug or slugify(name, fallback="category"),
                description=description,
            )
            .on_conflict_do_nothing()
            .returning(categories)
        )
    ).first()
    if row is None:
        raise Conflict(
            "A category with this name or slug already exists.",
            errors=[{"field": "name", "message": "already exists"}],
        )
    return row


async def list_categories(session: AsyncSession, page: PageParams) -> list[Any]:
    """Categories by name (``limit + 1`` rows: the extra one means another page)."""
    query = select(categories).order_by(categories.c.name, categories.c.id).limit(page.limit + 1)
    if page.after is not None:
        try:
            after = (str(page.after["name"]), uuid.UUID(str(page.after["id"])))
        except (KeyError, ValueError) as exc:
            raise ValidationFailed.field("cursor", "not a valid cursor") from exc
        query = query.where(tuple_(categories.c.name, categories.c.id) > after)
    return list(await session.execute(query))


async def find_category(session: AsyncSession, ref: uuid.UUID | str) -> Any | None:
    """A category by id or slug."""
    if isinstance(ref, uuid.UUID):
        clause = categories.c.id == ref
    else:
        clause = categories.c.slug == ref.lower()
    return (await session.execute(select(categories).where(clause))).first()
