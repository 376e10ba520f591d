"""Hint agent: graded hints on a concept, from a nudge to a strong hint, never the answer."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ai_service.agents.base import AgentInput, Prepared
from ai_service.context import TutorContext
from ai_service.outputs import HintOutput
from ai_service.prompts import PromptTemplate, material_message, student_message
from ai_service.providers.base import ChatMessage, ProviderRequest
from ai_service.retrieval import ground
from unpuzzle_common.auth import Principal
from unpuzzle_common.errors import ValidationFailed


class HintAgent:
    name = "hint"
    output = HintOutput

    def check(self, data: AgentInput) -> None:
        if not data.concept:
            raise ValidationFailed.field("concept", "say what you are stuck on")

    async def prepare(
        self,
        session: AsyncSession,
        ctx: TutorContext,
        principal: Principal,
        data: AgentInput,
        template: PromptTemplate,
    ) -> Prepared:
        concept = data.concept or ""
        passages = await ground(
            session,
            course_id=data.course_id,
            query=concept,
            limit=ctx.settings.passages_per_answer,
            lesson_id=data.lesson_id,
        )
        request = ProviderRequest(
            task="hint",
            messages=[
                ChatMessage("system", template.render()),
                material_message(passages),
                student_message(concept, label="STUDENT_CONCEPT", intro="I am stuck on:"),
            ],
            passages=passages,
            question=concept,
            json_output=True,
            max_tokens=ctx.settings.max_answer_tokens,
        )
        return Prepared(request, passages)

    def shape(self, output: HintOutput, prepared: Prepared, data: AgentInput) -> dict[str, Any]:
        return {"concept": data.concept, "hints": output.hints}


HINT = HintAgent()
