"""Reflection agent: feedback on a student's own answer, against the course material."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ai_service.agents.base import AgentInput, Prepared
from ai_service.context import TutorContext
from ai_service.outputs import ReflectionOutput
from ai_service.prompts import PromptTemplate, material_message, student_message
from ai_service.providers.base import ChatMessage, ProviderRequest
from ai_service.retrieval import ground
from unpuzzle_common.auth import Principal
from unpuzzle_common.errors import ValidationFailed


class ReflectionAgent:
    name = "reflection"
    output = ReflectionOutput

    def check(self, data: AgentInput) -> None:
        if not data.answer:
            raise ValidationFailed.field("answer", "the answer to give feedback on is required")

    async def prepare(
        self,
        session: AsyncSession,
        ctx: TutorContext,
        principal: Principal,
        data: AgentInput,
        template: PromptTemplate,
    ) -> Prepared:
        answer = data.answer or ""
        passages = await ground(
            session,
            course_id=data.course_id,
            query=f"{data.concept or ''} {answer}",
            limit=ctx.settings.passages_per_answer,
            lesson_id=data.lesson_id,
        )
        messages = [ChatMessage("system", template.render()), material_message(passages)]
        if data.concept:
            messages.append(
                student_message(data.concept, label="QUESTION", intro="The question was:")
            )
        messages.append(student_message(answer, label="STUDENT_ANSWER", intro="My answer:"))
        request = ProviderRequest(
            task="reflection",
            messages=messages,
            passages=passages,
            question=data.concept or "",
            inputs={"answer": answer},
            json_output=True,
            max_tokens=ctx.settings.max_answer_tokens,
        )
        return Prepared(request, passages)

    def shape(
        self, output: ReflectionOutput, prepared: Prepared, data: AgentInput
    ) -> dict[str, Any]:
        return output.model_dump()


REFLECTION = ReflectionAgent()
