"""The one interface every answer provider implements, and what flows through it.

A :class:`ProviderRequest` carries both forms of the same request: the chat
``messages`` a language model reads (instructions, delimited course material, the
student's text, each in its own message) and the structured pieces (``passages``,
``question``, ``inputs``) an extractive provider works from. Providers raise
:class:`ProviderUnavailable` when the model cannot be reached (after retries, or with
the circuit open) and :class:`ProviderError` for answers that cannot be used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from ai_service.retrieval import Passage

Role = Literal["system", "user", "assistant"]
Task = Literal["chat", "hint", "quiz", "reflection", "path"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class ProviderRequest:
    task: Task
    messages: list[ChatMessage]
    passages: list[Passage] = field(default_factory=list)
    #: The student's question, message or concept (plain, for extractive answers).
    question: str = ""
    #: Task-specific values (answer, count, candidate lessons...).
    inputs: dict[str, Any] = field(default_factory=dict)
    #: The answer must be one JSON object.
    json_output: bool = False
    max_tokens: int = 700

    def followed_by(self, *messages: ChatMessage) -> ProviderRequest:
        """The same request with more messages appended (a repair turn)."""
        return replace(self, messages=[*self.messages, *messages])


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    provider: str
    model: str
    offline: bool = False
    #: Said to the user alongside the answer (e.g. that it was answered offline).
    notice: str | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def plus_usage_of(self, earlier: Completion) -> Completion:
        """This answer, billed together with an earlier call it replaced (a repair)."""
        return replace(
            self,
            prompt_tokens=self.prompt_tokens + earlier.prompt_tokens,
            completion_tokens=self.completion_tokens + earlier.completion_tokens,
        )


@dataclass(frozen=True)
class Delta:
    """A piece of a streamed answer; the last one may carry only the usage."""

    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class ProviderError(Exception):
    """The provider answered, but not with something usable (a 4xx, a broken stream)."""


class ProviderUnavailable(ProviderError):
    """The model cannot be reached now; ``retry_after`` seconds is a fair wait."""

    def __init__(self, message: str, *, retry_after: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Provider(Protocol):
    """Answers tutor requests: whole (``complete``) or as a stream of deltas."""

    name: str
    model: str
    offline: bool

    async def complete(self, request: ProviderRequest) -> Completion: ...

    def stream(self, request: ProviderRequest) -> AsyncIterator[Delta]: ...

    async def aclose(self) -> None: ...


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token) when no tokenizer reports one."""
    return max(1, (len(text) + 3) // 4) if text else 0


def estimate_prompt_tokens(messages: list[ChatMessage]) -> int:
    return sum(estimate_tokens(m.content) + 4 for m in messages)
