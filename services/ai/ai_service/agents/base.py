"""What an agent is: how it prepares its request and shapes its answer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from ai_service.context import TutorContext
from ai_service.prompts import PromptTemplate
from ai_service.providers.base import ProviderRequest
from ai_service.retrieval import Passage
from unpuzzle_common.auth import Principal


@dataclass(frozen=True)
class AgentInput:
    course_id: uuid.UUID
    lesson_id: uuid.UUID | None = None
    concept: str | None = None
    answer: str | None = None
    count: int | None = None


@dataclass
class Prepared:
    """An agent's provider request and what it needs to shape the answer."""

    request: ProviderRequest
    passages: list[Passage]
    facts: dict[str, Any] = field(default_factory=dict)


class Agent(Protocol):
    name: str
    #: The JSON shape the answer must have.
    output: type[BaseModel]

    def check(self, data: AgentInput) -> None:
        """Raise a 422 when the request lacks what this agent needs."""

    async def prepare(
        self,
        session: AsyncSession,
        ctx: TutorContext,
        principal: Principal,
        data: AgentInput,
        template: PromptTemplate,
    ) -> Prepared: ...

    def shape(self, output: Any, prepared: Prepared, data: AgentInput) -> dict[str, Any]:
        """The agent-specific fields of the response."""
        ...
