"""Password hashing (argon2id, off the event loop) and the password policy."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from unpuzzle_common.errors import ValidationFailed

MIN_LENGTH = 10
MAX_LENGTH = 128  # argon2 is happy with more; longer inputs are a denial-of-service lever
_COMMON = {
    "password",
    "password1",
    "password123",
    "1234567890",
    "12345678910",
    "qwertyuiop",
    "iloveyou12",
    "letmein123",
    "welcome123",
    "admin12345",
    "unpuzzle123",
    "abcdefghij",
    "passw0rd123",
    "qwerty12345",
    "1q2w3e4r5t",
    "football123",
    "monkey1234",
    "dragon1234",
}


class PasswordHashing:
    """argon2id hashing; each hash or verify runs in a worker thread."""

    def __init__(self, *, time_cost: int, memory_cost: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
        )
        # Verified against when the email is unknown, so both paths cost the same.
        self._decoy = self._hasher.hash("decoy password that no account has")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; runs a full verify even without a hash."""
        target = password_hash or self._decoy
        try:
            ok = await asyncio.to_thread(self._hasher.verify, target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return ok and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


def check_password_policy(password: str, *, email: str, field: str = "password") -> None:
    """Refuse passwords that are short, huge, common, or built from the email."""
    if len(password) < MIN_LENGTH:
        raise ValidationFailed.field(field, f"must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise ValidationFailed.field(field, f"must be at most {MAX_LENGTH} characters")
    lowered = password.lower()
    if lowered in _COMMON or len(set(password)) < 4:
        raise ValidationFailed.field(field, "is too common or too simple")
    local_part = email.split("@", 1)[0].lower()
    if len(local_part) >= 4 and local_part in lowered:
        raise ValidationFailed.field(field, "must not contain the email address")
