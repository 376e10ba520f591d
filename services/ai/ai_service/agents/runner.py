"""Running an agent: access, limit, grounding, a validated answer, usage."""

from __future__ import annotations

from typing import Any

from ai_service.access import ensure_course_access
from ai_service.agents.base import Agent, AgentInput
from ai_service.context import TutorContext
from ai_service.usage import cost_micro_usd, daily_limit, record_usage
from unpuzzle_common.auth import Principal
from unpuzzle_common.db import transaction


async def run_agent(
    ctx: TutorContext, principal: Principal, agent: Agent, data: AgentInput
) -> dict[str, Any]:
    """The agent's answer for the caller, counted against the caller's daily limit.

    No database connection is held while the model thinks: grounding is read first,
    usage is written after.
    """
    agent.check(data)
    template = ctx.answering.prompts.get(agent.name)
    async with ctx.sessions() as session:
        await ensure_course_access(session, principal, data.course_id)
        limit = await daily_limit(
            session, principal.user_id, free_limit=ctx.settings.free_daily_limit
        )
        reservation = await ctx.limiter.reserve(principal.user_id, limit=limit)
        try:
            prepared = await agent.prepare(session, ctx, principal, data, template)
        except Exception:
            await ctx.limiter.refund(reservation)
            raise
    try:
        output, completion = await ctx.answering.complete_structured(prepared.request, agent.output)
    except Exception:
        await ctx.limiter.refund(reservation)
        raise
    cost = cost_micro_usd(
        ctx.settings.prices,
        completion.model,
        completion.prompt_tokens,
        completion.completion_tokens,
    )
    async with transaction(ctx.sessions) as session:
        await record_usage(
            session,
            user_id=principal.user_id,
            day=reservation.day,
            tokens=completion.tokens,
            cost=cost,
            agent=agent.name,
        )
    await ctx.limiter.add(reservation, tokens=completion.tokens, cost=cost)
    return {
        "agent": agent.name,
        "course_id": data.course_id,
        "lesson_id": data.lesson_id,
        "citations": [p.citation() for p in prepared.passages],
        "tokens": completion.tokens,
        "offline": completion.offline,
        "notice": completion.notice,
        "model": completion.model,
        "prompt_version": template.id,
        **agent.shape(output, prepared, data),
    }
