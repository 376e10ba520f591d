"""Password reset with single-use, expiring tokens delivered by mail."""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.mailer import Mailer
from auth_service.models import password_resets, users
from auth_service.passwords import PasswordHashing
from auth_service.tokens import revoke_all_sessions
from auth_service.users import set_password, user_by_email
from unpuzzle_common.errors import ValidationFailed

log = logging.getLogger("auth.password_resets")


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def request_reset(
    session: AsyncSession,
    redis: Redis,
    mailer: Mailer,
    *,
    email: str,
    ttl: int,
    per_hour: int,
    base_url: str,
) -> None:
    """Mail a reset link when the account exists. Callers answer 202 whatever happens."""
    user = await user_by_email(session, email)
    if user is None or not user.is_active:
        return
    counter = f"reset:sent:{user.id}"
    try:
        sent = await redis.incr(counter)
        if sent == 1:
            await redis.expire(counter, 3600)
    except RedisError:
        # The hourly cap is a courtesy against mail floods; the user's reset matters more.
        log.warning("password reset mail cap skipped: Redis is unreachable")
        sent = 1
    if sent > per_hour:
        log.info(
            "password reset mail suppressed (hourly limit)", extra={"target_user": str(user.id)}
        )
        return
    token = secrets.token_urlsafe(32)
    await session.execute(
        password_resets.insert().values(
            id=uuid.uuid4(),
            user_id=user.id,
            token_hash=_hash(token),
            expires_at=datetime.now(UTC) + timedelta(seconds=ttl),
        )
    )
    link = f"{base_url.rstrip('/')}/reset-password?token={quote(token)}"
    await mailer.send(
        user.email,
        "Reset your Unpuzzle password",
        f"Hello {user.full_name},\n\nSomeone asked to reset the password of this account.\n"
        f"If it was you, open this link within {ttl // 60} minutes:\n\n{link}\n\n"
        "The reset token is:\n\n"
        f"{token}\n\nIf it was not you, ignore this mail; your password is unchanged.\n",
    )


async def reset_password(
    session: AsyncSession, hashing: PasswordHashing, *, token: str, new_password: str
) -> None:
    """Spend a reset token, set the new password and sign the account out everywhere."""
    now = datetime.now(UTC)
    row = (
        await session.execute(
            select(password_resets)
            .where(password_resets.c.token_hash == _hash(token))
            .with_for_update()
        )
    ).first()
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise ValidationFailed.field("token", "invalid, expired or already used")
    user = (await session.execute(select(users).where(users.c.id == row.user_id))).first()
    assert user is not None  # FK guarantees it
    await set_password(session, hashing, user, new_password)
    # Every outstanding reset token of the user dies with this one.
    await session.execute(
        update(password_resets)
        .where(password_resets.c.user_id == user.id, password_resets.c.used_at.is_(None))
        .values(used_at=now)
    )
    await revoke_all_sessions(session, user.id, reason="password_reset")
