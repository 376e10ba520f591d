"""Usage per user per day: the limit check, the counters, the price of an answer.

The live counters are a Redis hash per user and UTC day (``requests``, ``tokens``,
``cost``). A request *reserves* its place before the model is called: one Lua script
compares the count with the limit and increments it, atomically, so any number of
parallel requests can never take more places than the limit. A request that fails
gives its place back (``refund``); one that succeeds adds its tokens and cost. The
durable record is ``usage_daily`` plus an ``ai.usage.recorded.v1`` event, written in
the transaction that stores the answer.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ai_service.models import outbox, plans, usage_daily
from ai_service.settings import ModelPrice
from unpuzzle_common.errors import TooManyRequests
from unpuzzle_common.events.outbox import add_event
from unpuzzle_common.events.schemas import AiUsageRecorded

# KEYS[1]: the day's hash. ARGV: limit, seconds to keep the hash.
# Returns {1, requests after} when a place was taken, {0, requests} at the limit.
_RESERVE = """
local used = tonumber(redis.call('HGET', KEYS[1], 'requests') or '0')
if used >= tonumber(ARGV[1]) then
  return {0, used}
end
used = redis.call('HINCRBY', KEYS[1], 'requests', 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {1, used}
"""

# Gives a place back, never below zero (a refund after the key expired is a no-op).
_REFUND = """
local used = tonumber(redis.call('HGET', KEYS[1], 'requests') or '0')
if used > 0 then
  return redis.call('HINCRBY', KEYS[1], 'requests', -1)
end
return 0
"""

#: Counters outlive their day by this much, so yesterday's can still be read.
_KEEP_AFTER_MIDNIGHT = 24 * 3600


class DailyLimitReached(TooManyRequests):
    slug = "ai-daily-limit"


def next_midnight(now: datetime) -> datetime:
    """The next UTC midnight after ``now`` (when the daily counters reset)."""
    today = now.astimezone(UTC).date()
    return datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def seconds_to_midnight(now: datetime) -> int:
    return max(1, math.ceil((next_midnight(now) - now).total_seconds()))


def cost_micro_usd(
    prices: dict[str, ModelPrice], model: str, prompt_tokens: int, completion_tokens: int
) -> int:
    """Cost of one call in micro-dollars, rounded up; models without a price cost nothing."""
    price = prices.get(model)
    if price is None:
        return 0
    total = prompt_tokens * price.input_per_million + completion_tokens * price.output_per_million
    return -(-total // 1_000_000)


@dataclass(frozen=True)
class Reservation:
    """A place taken in a user's daily count."""

    user_id: uuid.UUID
    day: date
    key: str
    requests_today: int


@dataclass(frozen=True)
class UsageToday:
    requests: int
    tokens: int
    cost_micro_usd: int


class UsageLimiter:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._reserve = redis.register_script(_RESERVE)
        self._refund = redis.register_script(_REFUND)

    def _key(self, user_id: uuid.UUID, day: date) -> str:
        return f"{self._prefix}:usage:{user_id}:{day.isoformat()}"

    async def reserve(
        self, user_id: uuid.UUID, *, limit: int, now: datetime | None = None
    ) -> Reservation:
        """Take one of today's places; :class:`DailyLimitReached` (429) when none is left."""
        now = now or datetime.now(UTC)
        day = now.astimezone(UTC).date()
        key = self._key(user_id, day)
        ttl = seconds_to_midnight(now) + _KEEP_AFTER_MIDNIGHT
        taken, used = await self._reserve(keys=[key], args=[limit, ttl])
        if not taken:
            raise DailyLimitReached(
                f"You have used your {limit} AI requests for today; the count resets at "
                "midnight UTC.",
                retry_after=seconds_to_midnight(now),
                extra={
                    "daily_limit": limit,
                    "requests_today": int(used),
                    "resets_at": next_midnight(now).isoformat(),
                },
            )
        return Reservation(user_id=user_id, day=day, key=key, requests_today=int(used))

    async def refund(self, reservation: Reservation) -> None:
        """Give back a place whose request failed before anything was served."""
        await self._refund(keys=[reservation.key])

    async def add(self, reservation: Reservation, *, tokens: int, cost: int) -> None:
        """Count what a served request consumed."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(reservation.key, "tokens", tokens)
            pipe.hincrby(reservation.key, "cost", cost)
            await pipe.execute()

    async def today(self, user_id: uuid.UUID, *, now: datetime | None = None) -> UsageToday:
        now = now or datetime.now(UTC)
        values = await self._redis.hmget(
            self._key(user_id, now.astimezone(UTC).date()), ["requests", "tokens", "cost"]
        )
        requests, tokens, cost = (int(v or 0) for v in values)
        return UsageToday(requests=requests, tokens=tokens, cost_micro_usd=cost)


async def daily_limit(session: AsyncSession, user_id: uuid.UUID, *, free_limit: int) -> int:
    """Requests a day the user's plan allows (the free plan's without a subscription)."""
    row = (
        await session.execute(
            select(plans.c.ai_daily_limit, plans.c.active).where(plans.c.user_id == user_id)
        )
    ).first()
    if row is None or not row.active or row.ai_daily_limit is None:
        return free_limit
    return row.ai_daily_limit


async def record_usage(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    day: date,
    tokens: int,
    cost: int,
    agent: str,
) -> None:
    """The durable record of one served request: the day's row and the event for analytics."""
    statement = insert(usage_daily).values(
        user_id=user_id, day=day, requests=1, tokens=tokens, cost_micro_usd=cost
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[usage_daily.c.user_id, usage_daily.c.day],
            set_={
                "requests": usage_daily.c.requests + 1,
                "tokens": usage_daily.c.tokens + tokens,
                "cost_micro_usd": usage_daily.c.cost_micro_usd + cost,
            },
        )
    )
    await add_event(
        session,
        outbox,
        AiUsageRecorded(user_id=user_id, tokens=tokens, cost_micro_usd=cost, agent=agent),
        source="ai",
    )
