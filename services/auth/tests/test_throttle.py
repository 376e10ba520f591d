"""The sign-in throttle steps aside when Redis is unreachable instead of failing sign-in."""

from __future__ import annotations

from redis.asyncio import Redis

from auth_service.throttle import SigninThrottle


async def test_unreachable_redis_lets_sign_in_proceed():
    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    throttle = SigninThrottle(redis, per_account=1, per_address=1, window=60)
    try:
        await throttle.check("ada@example.com", "203.0.113.1")  # no exception: not locked
        await throttle.failed("ada@example.com", "203.0.113.1")
        await throttle.succeeded("ada@example.com", "203.0.113.1")
    finally:
        await redis.aclose()
