"""The keys that sign access tokens: creation, rotation, the published JWKS.

Private keys are stored encrypted (Fernet, keyed from ``AUTH_KEY_ENCRYPTION_SECRET``).
A rotation adds a key that is published at once but signs only from
``now + key_publish_lead``; the previous key stops signing then and stays published
until every token it signed has expired. Nobody is logged out by a rotation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service.models import signing_keys
from unpuzzle_common.auth import VerificationKey, key_from_jwk

ALG = "ES256"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey


def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


def _new_key_row(secret: str, active_from: datetime) -> dict[str, Any]:
    private = ec.generate_private_key(ec.SECP256R1())
    kid = uuid.uuid4().hex[:16]
    jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    jwk.update({"kid": kid, "alg": ALG, "use": "sig"})
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "kid": kid,
        "alg": ALG,
        "private_key": _fernet(secret).encrypt(pem),
        "public_jwk": jwk,
        "active_from": active_from,
    }


async def ensure_signing_key(session: AsyncSession, secret: str) -> None:
    """Create the first key when there is none (first start of a new installation)."""
    exists = await session.scalar(select(signing_keys.c.kid).limit(1))
    if exists is None:
        await session.execute(
            signing_keys.insert().values(**_new_key_row(secret, datetime.now(UTC)))
        )


async def rotate_signing_key(
    session: AsyncSession, secret: str, *, publish_lead: int, token_ttl: int
) -> str:
    """Add the next key and schedule the current one's retirement; return the new kid."""
    now = datetime.now(UTC)
    switch_at = now + timedelta(seconds=publish_lead)
    row = _new_key_row(secret, switch_at)
    await session.execute(
        update(signing_keys).where(signing_keys.c.retired_at.is_(None)).values(retired_at=switch_at)
    )
    await session.execute(signing_keys.insert().values(**row))
    return row["kid"]


class KeyRing:
    """Cached view of the signing keys, refreshed from the database every few seconds."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        secret: str,
        token_ttl: int,
        refresh_every: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._fernet = _fernet(secret)
        self._token_ttl = token_ttl
        self._refresh_every = refresh_every
        self._rows: list[Any] = []
        self._loaded_at = 0.0
        self._private: dict[str, ec.EllipticCurvePrivateKey] = {}

    async def _rows_now(self, *, force: bool = False) -> list[Any]:
        if force or time.monotonic() - self._loaded_at > self._refresh_every:
            async with self._sessions() as session:
                result = await session.execute(
                    select(signing_keys).order_by(signing_keys.c.active_from)
                )
                self._rows = list(result)
            self._loaded_at = time.monotonic()
        return self._rows

    async def signing_key(self) -> SigningKey:
        """The key that signs now: the newest whose activation time has come."""
        now = datetime.now(UTC)
        rows = [r for r in await self._rows_now() if r.active_from <= now]
        if not rows:
            rows = [r for r in await self._rows_now(force=True) if r.active_from <= now]
        if not rows:
            raise RuntimeError("no active signing key; run migrations and start-up first")
        row = rows[-1]
        if row.kid not in self._private:
            pem = self._fernet.decrypt(row.private_key)
            key = serialization.load_pem_private_key(pem, password=None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            self._private[row.kid] = key
        return SigningKey(kid=row.kid, private_key=self._private[row.kid])

    async def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """Public keys that may have signed a still-valid token, or soon will sign."""
        now = datetime.now(UTC)
        grace = timedelta(seconds=self._token_ttl + 60)
        keys = [
            dict(r.public_jwk)
            for r in await self._rows_now()
            if r.retired_at is None or r.retired_at + grace > now
        ]
        return {"keys": keys}

    async def verification_key(self, kid: str) -> VerificationKey | None:
        """Lookup used by the auth service's own token verifier."""
        key = _find(kid, await self.jwks())
        if key is None and time.monotonic() - self._loaded_at > 1.0:
            # A key rotated in by another replica: reload, at most once a second.
            await self._rows_now(force=True)
            key = _find(kid, await self.jwks())
        return key


def _find(kid: str, jwks: dict[str, list[dict[str, Any]]]) -> VerificationKey | None:
    for jwk in jwks["keys"]:
        if jwk["kid"] == kid:
            return key_from_jwk(jwk)
    return None
