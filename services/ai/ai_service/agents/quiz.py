"""Quiz agent: multiple-choice questions with an answer key and explanations."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ai_service.agents.base import AgentInput, Prepared
from ai_service.context import TutorContext
from ai_service.outputs import QuizOutput
from ai_service.prompts import PromptTemplate, material_message, student_message
from ai_service.providers.base import ChatMessage, ProviderRequest
from ai_service.retrieval import ground
from unpuzzle_common.auth import Principal


class QuizAgent:
    name = "quiz"
    output = QuizOutput

    def check(self, data: AgentInput) -> None:
        return None  # a quiz on the course (or lesson) needs no topic

    async def prepare(
        self,
        session: AsyncSession,
        ctx: TutorContext,
        principal: Principal,
        data: AgentInput,
        template: PromptTemplate,
    ) -> Prepared:
        count = data.count or ctx.settings.quiz_questions
        # More passages than questions: the extra ones give the distractors.
        passages = await ground(
            session,
            course_id=data.course_id,
            query=data.concept,
            limit=max(8, 2 * count),
            lesson_id=data.lesson_id,
        )
        messages = [ChatMessage("system", template.render(count=count)), material_message(passages)]
        if data.concept:
            messages.append(
                student_message(data.concept, label="STUDENT_TOPIC", intro="Quiz me on:")
            )
        request = ProviderRequest(
            task="quiz",
            messages=messages,
            passages=passages,
            question=data.concept or "",
            inputs={"count": count},
            json_output=True,
            max_tokens=max(ctx.settings.max_answer_tokens, 250 * count),
        )
        return Prepared(request, passages, {"count": count})

    def shape(self, output: QuizOutput, prepared: Prepared, data: AgentInput) -> dict[str, Any]:
        return {"questions": output.questions[: prepared.facts["count"]]}


QUIZ = QuizAgent()
