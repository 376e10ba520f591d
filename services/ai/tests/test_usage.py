"""Daily limits: atomic under concurrency, refunded on failure, from the user's plan."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from ai_service.models import outbox, usage_daily
from ai_service.providers.base import ProviderUnavailable
from ai_service.settings import DEFAULT_PRICES
from ai_service.usage import DailyLimitReached, UsageLimiter, cost_micro_usd, next_midnight
from unpuzzle_common.events.schemas import SubscriptionActivated


def _hint(course) -> dict:
    return {"course_id": str(course.course_id), "concept": "glucose"}


async def test_20_parallel_requests_never_exceed_the_limit(client, auth, course, ctx):
    ctx.settings.free_daily_limit = 5
    headers = auth(course.student_id)
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/ai/agents/hint", json=_hint(course), headers=headers)
            for _ in range(20)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 5 + [429] * 15
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["content-type"] == "application/problem+json"
    assert 0 < int(refused.headers["retry-after"]) <= 86_400
    assert refused.json()["daily_limit"] == 5
    usage = (await client.get("/api/v1/ai/usage", headers=headers)).json()
    assert usage["requests_today"] == 5 and usage["daily_limit"] == 5
    assert usage["tokens_today"] > 0
    assert datetime.fromisoformat(usage["resets_at"]) == next_midnight(datetime.now(UTC))
    async with ctx.sessions() as session:
        assert await session.scalar(select(usage_daily.c.requests)) == 5
        events = await session.scalar(
            select(func.count()).where(outbox.c.type == "ai.usage.recorded.v1")
        )
    assert events == 5


async def test_limiter_alone_takes_exactly_the_limit_under_contention(ctx):
    limiter = UsageLimiter(ctx.redis, prefix=ctx.settings.redis_prefix)
    user = uuid.uuid4()

    async def attempt():
        try:
            return await limiter.reserve(user, limit=7)
        except DailyLimitReached:
            return None

    taken = [r for r in await asyncio.gather(*(attempt() for _ in range(40))) if r]
    assert len(taken) == 7
    await limiter.refund(taken[0])
    assert (await limiter.today(user)).requests == 6


async def test_a_failed_request_gives_its_place_back(client, auth, course, ctx):
    class Down:
        name, model, offline = "down", "down", False

        async def complete(self, request):
            raise ProviderUnavailable("down", retry_after=7)

        async def aclose(self):
            return None

    ctx.answering.provider = Down()
    ctx.answering.fallback_to_offline = False
    headers = auth(course.student_id)
    response = await client.post("/api/v1/ai/agents/hint", json=_hint(course), headers=headers)
    assert response.status_code == 503 and response.headers["retry-after"] == "7"
    usage = (await client.get("/api/v1/ai/usage", headers=headers)).json()
    assert usage["requests_today"] == 0


async def test_the_plan_from_a_subscription_sets_the_limit(client, auth, course, apply_event):
    await apply_event(
        SubscriptionActivated(user_id=course.student_id, plan="pro", ai_daily_limit=1)
    )
    headers = auth(course.student_id)
    first = await client.post("/api/v1/ai/agents/hint", json=_hint(course), headers=headers)
    second = await client.post("/api/v1/ai/agents/hint", json=_hint(course), headers=headers)
    assert (first.status_code, second.status_code) == (200, 429)
    assert (await client.get("/api/v1/ai/usage", headers=headers)).json()["daily_limit"] == 1


async def test_messages_count_too_and_the_limit_answers_before_anything_is_stored(
    client, auth, course, ctx
):
    ctx.settings.free_daily_limit = 1
    headers = auth(course.student_id)
    session = (
        await client.post(
            "/api/v1/ai/sessions", json={"course_id": str(course.course_id)}, headers=headers
        )
    ).json()
    url = f"/api/v1/ai/sessions/{session['id']}/messages"
    assert (
        await client.post(url, json={"content": "glucose?"}, headers=headers)
    ).status_code == 201
    over = await client.post(url, json={"content": "again?"}, headers=headers)
    assert over.status_code == 429
    listed = (await client.get(url, headers=headers)).json()["items"]
    assert len(listed) == 2


@pytest.mark.parametrize(
    ("model", "prompt", "completion", "expected"),
    [("gpt-4o-mini", 1000, 500, 450), ("gpt-4o-mini", 1, 0, 1), ("self-hosted", 10**6, 10**6, 0)],
)
def test_cost_is_whole_micro_dollars_rounded_up(model, prompt, completion, expected):
    assert cost_micro_usd(DEFAULT_PRICES, model, prompt, completion) == expected
