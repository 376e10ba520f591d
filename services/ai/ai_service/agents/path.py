"""Learning-path agent: the next lessons to take, from the student's progress.

Progress comes from ``lesson.completed.v1``; the course's lessons from
``course.published.v1``. The candidates are the lessons not completed yet; the model
(or the offline provider) orders and explains up to three of them, and anything it
names outside the candidates is dropped.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ai_service.agents.base import AgentInput, Prepared
from ai_service.context import TutorContext
from ai_service.models import completed_lessons, course_lessons
from ai_service.outputs import PathOutput
from ai_service.prompts import PromptTemplate, student_message, untrusted_block
from ai_service.providers.base import ChatMessage, ProviderRequest
from ai_service.retrieval import search
from unpuzzle_common.auth import Principal

MAX_STEPS = 3


class PathAgent:
    name = "path"
    output = PathOutput

    def check(self, data: AgentInput) -> None:
        return None

    async def prepare(
        self,
        session: AsyncSession,
        ctx: TutorContext,
        principal: Principal,
        data: AgentInput,
        template: PromptTemplate,
    ) -> Prepared:
        lessons = [
            dict(r._mapping)
            for r in await session.execute(
                select(
                    course_lessons.c.lesson_id, course_lessons.c.title, course_lessons.c.position
                )
                .where(course_lessons.c.course_id == data.course_id)
                .order_by(course_lessons.c.position, course_lessons.c.lesson_id)
            )
        ]
        done = set(
            await session.scalars(
                select(completed_lessons.c.lesson_id).where(
                    completed_lessons.c.user_id == principal.user_id,
                    completed_lessons.c.course_id == data.course_id,
                )
            )
        )
        candidates = [lesson for lesson in lessons if lesson["lesson_id"] not in done]
        relevant: list[str] = []
        passages = []
        if data.concept:
            passages = await search(
                session,
                course_id=data.course_id,
                query=data.concept,
                limit=ctx.settings.passages_per_answer * 2,
            )
            relevant = list(dict.fromkeys(str(p.lesson_id) for p in passages if p.lesson_id))
        listing = "Completed lessons:\n" + (
            "\n".join(f"- {lesson['title']}" for lesson in lessons if lesson["lesson_id"] in done)
            or "(none)"
        )
        listing += "\n\nNot completed (id: title):\n" + (
            "\n".join(f"- {c['lesson_id']}: {c['title']}" for c in candidates) or "(none)"
        )
        messages = [
            ChatMessage("system", template.render()),
            ChatMessage("user", untrusted_block("COURSE_LESSONS", listing)),
        ]
        if data.concept:
            messages.append(
                student_message(data.concept, label="STUDENT_GOAL", intro="I want to learn:")
            )
        request = ProviderRequest(
            task="path",
            messages=messages,
            passages=passages,
            question=data.concept or "",
            inputs={
                "candidates": [
                    {
                        "lesson_id": str(c["lesson_id"]),
                        "title": c["title"],
                        "position": c["position"],
                    }
                    for c in candidates
                ],
                "relevant_lesson_ids": relevant,
            },
            json_output=True,
            max_tokens=ctx.settings.max_answer_tokens,
        )
        facts = {"lessons": lessons, "done": done, "candidates": candidates}
        return Prepared(request, passages[: ctx.settings.passages_per_answer], facts)

    def shape(self, output: PathOutput, prepared: Prepared, data: AgentInput) -> dict[str, Any]:
        lessons, done = prepared.facts["lessons"], prepared.facts["done"]
        by_id = {c["lesson_id"]: c for c in prepared.facts["candidates"]}
        steps: list[dict[str, Any]] = []
        for step in output.next_lessons:
            lesson = by_id.pop(step.lesson_id, None)  # pop: each lesson once
            if lesson is not None:
                steps.append({**lesson, "reason": step.reason})
        if not steps:
            # The model named nothing usable: the course's own order is a sound path.
            steps = [
                {**c, "reason": "It is the next lesson of the course you have not completed."}
                for c in prepared.facts["candidates"]
            ]
        completed = [lesson["lesson_id"] for lesson in lessons if lesson["lesson_id"] in done]
        total = len(lessons)
        return {
            "completed_lesson_ids": completed,
            "total_lessons": total,
            "percent": (100 * len(completed)) // total if total else 0,
            "next_lessons": steps[:MAX_STEPS],
        }


PATH = PathAgent()
