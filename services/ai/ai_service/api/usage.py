"""``GET /api/v1/ai/usage``: the caller's AI usage today and the daily limit."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends

from ai_service.api.deps import tutor_context
from ai_service.context import TutorContext
from ai_service.schemas import UsageOut
from ai_service.usage import daily_limit, next_midnight
from unpuzzle_common.auth import Principal, current_principal

router = APIRouter(prefix="/api/v1/ai", tags=["ai usage"])


@router.get("/usage", response_model=UsageOut)
async def usage(
    principal: Principal = Depends(current_principal),
    ctx: TutorContext = Depends(tutor_context),
) -> UsageOut:
    now = datetime.now(UTC)
    async with ctx.sessions() as session:
        limit = await daily_limit(
            session, principal.user_id, free_limit=ctx.settings.free_daily_limit
        )
    today = await ctx.limiter.today(principal.user_id, now=now)
    return UsageOut(
        requests_today=today.requests,
        daily_limit=limit,
        tokens_today=today.tokens,
        cost_micro_usd_today=today.cost_micro_usd,
        resets_at=next_midnight(now),
    )
