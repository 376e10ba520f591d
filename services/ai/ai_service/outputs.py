"""What each agent's answer must look like: the JSON a model (or the offline provider)
returns is validated against these before anyone sees it."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class _Output(BaseModel):
    model_config = ConfigDict(extra="ignore")


class HintLevel(_Output):
    level: int = Field(ge=1, le=3)
    text: Text


class HintOutput(_Output):
    """Graded hints: level 1 is a nudge, each next level gives away more, none the answer."""

    hints: list[HintLevel] = Field(min_length=1, max_length=3)

    @model_validator(mode="after")
    def _graded(self) -> HintOutput:
        levels = [h.level for h in self.hints]
        if levels != list(range(1, len(levels) + 1)):
            raise ValueError("hints must be levels 1, 2, 3 in order")
        return self


class QuizQuestion(_Output):
    question: Text
    choices: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]] = Field(
        min_length=2, max_length=6
    )
    answer_index: int = Field(ge=0)
    explanation: Text

    @model_validator(mode="after")
    def _consistent(self) -> QuizQuestion:
        if self.answer_index >= len(self.choices):
            raise ValueError("answer_index must point at one of the choices")
        if len({c.lower() for c in self.choices}) != len(self.choices):
            raise ValueError("choices must differ")
        return self


class QuizOutput(_Output):
    questions: list[QuizQuestion] = Field(min_length=1, max_length=10)


class ReflectionOutput(_Output):
    feedback: Text
    strengths: list[Text] = Field(default_factory=list, max_length=5)
    improvements: list[Text] = Field(default_factory=list, max_length=5)
    #: How well the answer covers the material, 0-100, when the reviewer can tell.
    score: int | None = Field(default=None, ge=0, le=100)


class PathStep(_Output):
    lesson_id: uuid.UUID
    reason: Text


class PathOutput(_Output):
    next_lessons: list[PathStep] = Field(max_length=5)
