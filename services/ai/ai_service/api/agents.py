"""``/api/v1/ai/agents/{hint|quiz|reflection|path}``: the learning agents."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ai_service.agents import HINT, PATH, QUIZ, REFLECTION, AgentInput, run_agent
from ai_service.agents.base import Agent
from ai_service.api.deps import tutor_context
from ai_service.context import TutorContext
from ai_service.schemas import AgentRequest, HintOut, PathOut, QuizOut, ReflectionOut
from unpuzzle_common.auth import Principal, current_principal

router = APIRouter(prefix="/api/v1/ai/agents", tags=["ai agents"])


async def _run(agent: Agent, body: AgentRequest, principal: Principal, ctx: TutorContext) -> dict:
    return await run_agent(ctx, principal, agent, AgentInput(**body.model_dump()))


@router.post("/hint", response_model=HintOut)
async def hint(
    body: AgentRequest,
    principal: Principal = Depends(current_principal),
    ctx: TutorContext = Depends(tutor_context),
) -> dict:
    """Graded hints on ``concept``: a nudge first, never the full answer first."""
    return await _run(HINT, body, principal, ctx)


@router.post("/quiz", response_model=QuizOut)
async def quiz(
    body: AgentRequest,
    principal: Principal = Depends(current_principal),
    ctx: TutorContext = Depends(tutor_context),
) -> dict:
    """Multiple-choice questions on the lesson, the course, or ``concept``."""
    return await _run(QUIZ, body, principal, ctx)


@router.post("/reflection", response_model=ReflectionOut)
async def reflection(
    body: AgentRequest,
    principal: Principal = Depends(current_principal),
    ctx: TutorContext = Depends(tutor_context),
) -> dict:
    """Feedback on the student's ``answer`` (to the question in ``concept``, if given)."""
    return await _run(REFLECTION, body, principal, ctx)


@router.post("/path", response_model=PathOut)
async def path(
    body: AgentRequest,
    principal: Principal = Depends(current_principal),
    ctx: TutorContext = Depends(tutor_context),
) -> dict:
    """The next lessons to take, from the student's progress (and ``concept``, if given)."""
    return await _run(PATH, body, principal, ctx)
