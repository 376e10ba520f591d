"""Sign-in throttling per account and per client address (Redis counters).

Failures are counted in a fixed window; once an account or an address reaches its
limit, sign-in answers 429 with ``Retry-After`` until the window ends — even for the
right password, so a guesser learns nothing. A success clears the account's count.

When Redis is unreachable the throttle steps aside (logged as a warning): sign-in
keeps working, still paced by argon2's cost and the gateway's per-address limit,
rather than locking every user out.
"""

from __future__ import annotations

import hashlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from unpuzzle_common.errors import TooManyRequests

log = logging.getLogger("auth.throttle")


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
        try:
            counts = await self.redis.mget(account_key, address_key)
        except RedisError:
            log.warning("sign-in throttle skipped: Redis is unreachable")
            return
        for key, count, limit in zip(
            (account_key, address_key), counts, (self.per_account, self.per_address), strict=True
        ):
            if count is not None and int(count) >= limit:
                try:
                    ttl = await self.redis.ttl(key)
                except RedisError:
                    ttl = self.window
                raise TooManyRequests(
                    "Too many failed sign-ins; try again later.", retry_after=max(ttl, 1)
                )

    async def failed(self, email: str, address: str) -> None:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for key in self._keys(email, address):
                    pipe.incr(key)
                    pipe.expire(key, self.window, nx=True)
                await pipe.execute()
        except RedisError:
            log.warning("sign-in failure not counted: Redis is unreachable")

    async def succeeded(self, email: str, address: str) -> None:
        try:
            await self.redis.delete(self._keys(email, address)[0])
        except RedisError:
            log.warning("sign-in failures not cleared: Redis is unreachable")
