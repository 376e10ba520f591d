"""Sign-in throttling per account and per client address (Redis counters).

Failures are counted in a fixed window; once an account or an address reaches its
limit, sign-in answers 429 with ``Retry-After`` until the window ends — even for the
right password, so a guesser learns nothing. A success clears the account's count.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from unpuzzle_common.errors import TooManyRequests


class SigninThrottle:
    def __init__(self, redis: Redis, *, per_account: int, per_address: int, window: int) -> None:
        self.redis = redis
        self.per_account = per_account
        self.per_address = per_address
        self.window = window

    def _keys(self, email: str, address: str) -> tuple[str, str]:
        account = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        return f"signin:fail:account:{account}", f"signin:fail:address:{address}"

    async def check(self, email: str, address: str) -> None:
        """Raise 429 when the account or the address is locked out."""
        account_key, address_key = self._keys(email, address)
        counts = await self.redis.mget(account_key, address_key)
        for key, count, limit in zip(
            (account_key, address_key), counts, (self.per_account, self.per_address), strict=True
        ):
            if count is not None and int(count) >= limit:
                ttl = await self.redis.ttl(key)
                raise TooManyRequests(
                    "Too many failed sign-ins; try again later.", retry_after=max(ttl, 1)
                )

    async def failed(self, email: str, address: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in self._keys(email, address):
                pipe.incr(key)
                pipe.expire(key, self.window, nx=True)
            await pipe.execute()

    async def succeeded(self, email: str, address: str) -> None:
        await self.redis.delete(self._keys(email, address)[0])
