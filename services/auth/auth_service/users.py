"""Accounts: sign-up, credential checks, profile and role changes.

Every change other services care about writes its event to the outbox in the same
transaction (``user.registered.v1``, ``user.updated.v1``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.models import outbox, users
from auth_service.passwords import PasswordHashing, check_password_policy
from unpuzzle_common.auth import ADMIN, INSTRUCTOR, STUDENT
from unpuzzle_common.errors import Conflict, NotFound, ValidationFailed
from unpuzzle_common.events.outbox import add_event
from unpuzzle_common.events.schemas import UserRegistered, UserUpdated

ALL_ROLES = frozenset({STUDENT, INSTRUCTOR, ADMIN})
SOURCE = "auth"


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def _publish(session: AsyncSession, event_cls: Any, user: Any) -> None:
    await add_event(
        session,
        outbox,
        event_cls(
            user_id=user.id, email=user.email, full_name=user.full_name, roles=sorted(user.roles)
        ),
        source=SOURCE,
        subject=str(user.id),
    )


async def register_user(
    session: AsyncSession,
    hashing: PasswordHashing,
    *,
    email: str,
    password: str,
    full_name: str,
    roles: list[str],
) -> Any:
    """Create an account; 409 when the email is taken."""
    email = normalize_email(email)
    check_password_policy(password, email=email)
    password_hash = await hashing.hash(password)
    row = (
        await session.execute(
            insert(users)
            .values(
                id=uuid.uuid4(),
                email=email,
                password_hash=password_hash,
                full_name=full_name,
                roles=sorted(set(roles)),
            )
            .on_conflict_do_nothing(index_elements=[users.c.email])
            .returning(users)
        )
    ).first()
    if row is None:
        raise Conflict(
            "An account with this email already exists.",
            errors=[{"field": "email", "message": "already registered"}],
        )
    await _publish(session, UserRegistered, row)
    return row


async def user_by_email(session: AsyncSession, email: str) -> Any | None:
    result = await session.execute(select(users).where(users.c.email == normalize_email(email)))
    return result.first()


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> Any:
    row = (await session.execute(select(users).where(users.c.id == user_id))).first()
    if row is None:
        raise NotFound("No such user.")
    return row


async def authenticate(
    session: AsyncSession, hashing: PasswordHashing, *, email: str, password: str
) -> Any | None:
    """The active user with these credentials, else None (same cost either way)."""
    user = await user_by_email(session, email)
    ok = await hashing.verify(user.password_hash if user else None, password[:1024])
    if not ok or user is None or not user.is_active:
        return None
    if hashing.needs_rehash(user.password_hash):
        await session.execute(
            update(users)
            .where(users.c.id == user.id)
            .values(password_hash=await hashing.hash(password))
        )
    return user


async def update_profile(session: AsyncSession, user_id: uuid.UUID, changes: dict[str, Any]) -> Any:
    """Apply profile changes; emits ``user.updated.v1`` when something changed."""
    current = await get_user(session, user_id)
    changed = {k: v for k, v in changes.items() if getattr(current, k) != v}
    if not changed:
        return current
    row = (
        await session.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(**changed, updated_at=func.now())
            .returning(users)
        )
    ).first()
    await _publish(session, UserUpdated, row)
    return row


async def set_roles(session: AsyncSession, user_id: uuid.UUID, roles: list[str]) -> Any:
    """Replace a user's roles (admin only). The last admin cannot drop the role."""
    wanted = sorted(set(roles))
    unknown = [r for r in wanted if r not in ALL_ROLES]
    if unknown or not wanted:
        raise ValidationFailed.field("roles", f"must be a non-empty subset of {sorted(ALL_ROLES)}")
    current = await get_user(session, user_id)
    if ADMIN in current.roles and ADMIN not in wanted:
        admins = await session.scalar(
            select(func.count())
            .select_from(users)
            .where(users.c.roles.contains([ADMIN]), users.c.is_active)
        )
        if admins <= 1:
            raise Conflict("This is the last admin; give another account the admin role first.")
    return await update_profile(session, user_id, {"roles": wanted})


async def set_password(
    session: AsyncSession, hashing: PasswordHashing, user: Any, password: str
) -> None:
    check_password_policy(password, email=user.email, field="new_password")
    await session.execute(
        update(users)
        .where(users.c.id == user.id)
        .values(password_hash=await hashing.hash(password), updated_at=datetime.now(UTC))
    )


async def ensure_admin(
    session: AsyncSession, hashing: PasswordHashing, *, email: str, password: str, full_name: str
) -> tuple[Any, bool]:
    """Create the admin account, or give an existing account the admin role.

    Returns the user and whether it was created. Safe to run again.
    """
    existing = await user_by_email(session, email)
    if existing is None:
        user = await register_user(
            session, hashing, email=email, password=password, full_name=full_name, roles=[ADMIN]
        )
        return user, True
    if ADMIN not in existing.roles:
        existing = await update_profile(
            session, existing.id, {"roles": sorted({*existing.roles, ADMIN})}
        )
    return existing, False
