"""Request and response models of the AI API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ai_service.outputs import HintLevel, QuizQuestion

SessionType = Literal["chat", "hint", "quiz", "reflection", "path"]
#: Session types that only make sense on a course's material.
COURSE_GROUNDED = frozenset({"hint", "quiz", "reflection", "path"})


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionCreate(_Request):
    course_id: uuid.UUID | None = None
    lesson_id: uuid.UUID | None = None
    session_type: SessionType = "chat"

    @model_validator(mode="after")
    def _course_when_needed(self) -> SessionCreate:
        if self.course_id is None and self.session_type in COURSE_GROUNDED:
            raise ValueError(f"course_id is required for a {self.session_type} session")
        if self.course_id is None and self.lesson_id is not None:
            raise ValueError("lesson_id needs its course_id")
        return self


class SessionOut(BaseModel):
    id: uuid.UUID
    course_id: uuid.UUID | None
    lesson_id: uuid.UUID | None
    session_type: SessionType
    created_at: datetime
    updated_at: datetime


class MessageCreate(_Request):
    content: str = Field(min_length=1, max_length=20_000)


class Citation(BaseModel):
    passage_id: int | None = None
    source: Literal["lesson", "transcript"]
    lesson_id: uuid.UUID | None = None
    lesson_title: str | None = None
    media_id: uuid.UUID | None = None
    start_seconds: float | None = None
    end_seconds: float | None = None
    snippet: str


class MessageOut(BaseModel):
    id: uuid.UUID
    session_id: uuid.UUID
    role: Literal["user", "assistant"]
    content: str
    citations: list[Citation]
    tokens: int
    cost_micro_usd: int
    #: "complete", or "interrupted" when the client left a streamed answer early.
    status: str
    #: Answered without a language model (extractive, from the course material).
    offline: bool
    model: str | None
    created_at: datetime


class AgentRequest(_Request):
    course_id: uuid.UUID
    lesson_id: uuid.UUID | None = None
    #: What the student is asking about (required for a hint).
    concept: str | None = Field(default=None, min_length=1, max_length=500)
    #: The student's own answer (required for a reflection).
    answer: str | None = Field(default=None, min_length=1, max_length=8000)
    #: Questions in a quiz (default from configuration).
    count: int | None = Field(default=None, ge=1, le=10)


class AgentOut(BaseModel):
    agent: str
    course_id: uuid.UUID
    lesson_id: uuid.UUID | None
    citations: list[Citation]
    tokens: int
    offline: bool
    #: Said alongside the answer, e.g. that it was made offline.
    notice: str | None
    model: str
    prompt_version: str


class HintOut(AgentOut):
    concept: str
    hints: list[HintLevel]


class QuizOut(AgentOut):
    questions: list[QuizQuestion]


class ReflectionOut(AgentOut):
    feedback: str
    strengths: list[str]
    improvements: list[str]
    score: int | None


class PathLesson(BaseModel):
    lesson_id: uuid.UUID
    title: str
    position: int
    reason: str


class PathOut(AgentOut):
    completed_lesson_ids: list[uuid.UUID]
    total_lessons: int
    percent: int
    next_lessons: list[PathLesson]


class UsageOut(BaseModel):
    requests_today: int
    daily_limit: int
    tokens_today: int
    cost_micro_usd_today: int
    resets_at: datetime
