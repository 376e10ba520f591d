"""Access tokens (signed JWTs) and refresh tokens (opaque, hashed, rotated).

Each sign-in opens a session: a family of refresh tokens. Using a refresh token
spends it and issues the next one of the family. Presenting a spent token again
means it was stolen (or the client is confused): the whole family is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.models import refresh_tokens, sessions, users
from auth_service.signing_keys import ALG, KeyRing
from unpuzzle_common.auth import roles_claim
from unpuzzle_common.errors import Unauthorized


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: uuid.UUID


@dataclass(frozen=True)
class ClientInfo:
    """Where a sign-in came from, shown in the session list."""

    user_agent: str = ""
    ip_address: str = ""


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenIssuer:
    def __init__(
        self, keys: KeyRing, *, issuer: str, audience: str, access_ttl: int, refresh_ttl: int
    ):
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    async def access_token(self, user: Any, session_id: uuid.UUID) -> str:
        key = await self.keys.signing_key()
        now = datetime.now(UTC)
        claims = {
            "sub": str(user.id),
            "email": user.email,
            "roles": roles_claim(user.roles),
            "sid": str(session_id),
            "iss": self.issuer,
            "aud": self.audience,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self.access_ttl)).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, key.private_key, algorithm=ALG, headers={"kid": key.kid})

    async def _new_refresh_token(self, session: AsyncSession, session_id: uuid.UUID) -> str:
        token = secrets.token_urlsafe(32)
        await session.execute(
            refresh_tokens.insert().values(
                id=uuid.uuid4(),
                session_id=session_id,
                token_hash=_hash(token),
                expires_at=datetime.now(UTC) + timedelta(seconds=self.refresh_ttl),
            )
        )
        return token

    async def open_session(self, session: AsyncSession, user: Any, client: ClientInfo) -> TokenPair:
        """Start a new refresh-token family for ``user`` and issue its first pair."""
        session_id = uuid.uuid4()
        await session.execute(
            sessions.insert().values(
                id=session_id,
                user_id=user.id,
                expires_at=datetime.now(UTC) + timedelta(seconds=self.refresh_ttl),
                user_agent=client.user_agent[:512],
                ip_address=client.ip_address[:64],
            )
        )
        refresh = await self._new_refresh_token(session, session_id)
        return TokenPair(
            await self.access_token(user, session_id), refresh, self.access_ttl, session_id
        )

    async def rotate(self, session: AsyncSession, refresh_token: str) -> TokenPair | None:
        """Spend ``refresh_token`` and issue the next pair of its family.

        Returns None when the token was already spent: the caller must commit (the
        family is now revoked) and then refuse the request.
        """
        now = datetime.now(UTC)
        row = (
            await session.execute(
                select(refresh_tokens, sessions.c.user_id, sessions.c.revoked_at)
                .join(sessions, sessions.c.id == refresh_tokens.c.session_id)
                .where(refresh_tokens.c.token_hash == _hash(refresh_token))
                .with_for_update(of=refresh_tokens)
            )
        ).first()
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            raise Unauthorized("The refresh token is not valid.")
        if row.spent_at is not None:
            await revoke_session(session, row.session_id, reason="refresh_token_reuse")
            return None
        user = (
            await session.execute(select(users).where(users.c.id == row.user_id, users.c.is_active))
        ).first()
        if user is None:
            raise Unauthorized("The refresh token is not valid.")
        await session.execute(
            update(refresh_tokens).where(refresh_tokens.c.id == row.id).values(spent_at=now)
        )
        await session.execute(
            update(sessions)
            .where(sessions.c.id == row.session_id)
            .values(last_used_at=now, expires_at=now + timedelta(seconds=self.refresh_ttl))
        )
        refresh = await self._new_refresh_token(session, row.session_id)
        access = await self.access_token(user, row.session_id)
        return TokenPair(access, refresh, self.access_ttl, row.session_id)


async def session_of_refresh_token(session: AsyncSession, refresh_token: str) -> uuid.UUID | None:
    """The session a refresh token belongs to, spent or not."""
    return await session.scalar(
        select(refresh_tokens.c.session_id).where(
            refresh_tokens.c.token_hash == _hash(refresh_token)
        )
    )


async def revoke_session(session: AsyncSession, session_id: uuid.UUID, *, reason: str) -> bool:
    """Revoke a session (its whole token family). False when it was already revoked."""
    result = await session.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC), revoked_reason=reason)
    )
    return result.rowcount > 0


async def revoke_all_sessions(session: AsyncSession, user_id: uuid.UUID, *, reason: str) -> None:
    await session.execute(
        update(sessions)
        .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC), revoked_reason=reason)
    )


async def active_sessions(session: AsyncSession, user_id: uuid.UUID) -> list[Any]:
    now = datetime.now(UTC)
    result = await session.execute(
        select(sessions)
        .where(
            sessions.c.user_id == user_id,
            sessions.c.revoked_at.is_(None),
            sessions.c.expires_at > now,
        )
        .order_by(sessions.c.last_used_at.desc())
    )
    return list(result)


async def delete_expired_sessions(session: AsyncSession, *, older_than: timedelta) -> int:
    """Scheduled clean-up: drop sessions expired or revoked longer than ``older_than`` ago."""
    cutoff = datetime.now(UTC) - older_than
    result = await session.execute(
        sessions.delete().where((sessions.c.expires_at < cutoff) | (sessions.c.revoked_at < cutoff))
    )
    return result.rowcount
