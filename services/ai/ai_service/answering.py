"""Calling the configured provider, with the offline provider standing in.

When the model is unavailable (its circuit is open, or it kept failing after retries)
and ``fallback_to_offline`` is on, the request is answered offline and the answer says
so; otherwise the caller gets :class:`ModelUnavailable` (503 with ``Retry-After``).
Answers are cut to ``max_answer_chars``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from ai_service.prompts import PromptLibrary
from ai_service.providers.base import (
    ChatMessage,
    Completion,
    Delta,
    Provider,
    ProviderError,
    ProviderRequest,
    ProviderUnavailable,
    estimate_prompt_tokens,
    estimate_tokens,
)
from ai_service.retrieval import Passage
from unpuzzle_common.errors import Problem, ServiceUnavailable

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

FALLBACK_NOTICE = (
    "Offline answer: the language model is unavailable right now, so this answer is taken "
    "from the course material."
)
_CITATION = re.compile(r"\[(\d{1,2})\]")


class ModelUnavailable(ServiceUnavailable):
    slug = "ai-model-unavailable"


class ModelAnswerInvalid(Problem):
    """The model's answer could not be used, even after one repair attempt."""

    status, slug = 502, "ai-model-answer-invalid"


@dataclass
class Answering:
    """The provider in use, the offline stand-in, and the rules between them."""

    provider: Provider
    offline: Provider
    prompts: PromptLibrary
    fallback_to_offline: bool
    max_answer_chars: int

    @property
    def _can_fall_back(self) -> bool:
        return self.fallback_to_offline and self.provider is not self.offline

    def cap(self, text: str) -> str:
        if len(text) <= self.max_answer_chars:
            return text
        return text[: self.max_answer_chars - 1].rstrip() + "…"

    async def complete(self, request: ProviderRequest) -> Completion:
        try:
            completion = await self.provider.complete(request)
        except ProviderUnavailable as exc:
            if not self._can_fall_back:
                raise _unavailable(exc) from exc
            log.warning("model unavailable (%s); answering offline", exc)
            completion = replace(await self.offline.complete(request), notice=FALLBACK_NOTICE)
        except ProviderError as exc:
            raise ModelAnswerInvalid(f"The AI model could not answer: {exc}") from exc
        return replace(completion, text=self.cap(completion.text))

    async def complete_structured(
        self, request: ProviderRequest, schema: type[M]
    ) -> tuple[M, Completion]:
        """A JSON answer validated against ``schema``; one repair turn when it does not fit."""
        first = await self.complete(request)
        try:
            return parse_json(first.text, schema), first
        except (ValueError, ValidationError) as exc:
            problem = _describe(exc)
            log.info(
                "model answer did not fit %s (%s); asking for a repair", schema.__name__, problem
            )
        repair = request.followed_by(
            ChatMessage("assistant", first.text),
            ChatMessage("user", self.prompts.get("repair").render(problem=problem)),
        )
        second = (await self.complete(repair)).plus_usage_of(first)
        try:
            return parse_json(second.text, schema), second
        except (ValueError, ValidationError) as exc:
            raise ModelAnswerInvalid(
                f"The AI model's answer was not valid {schema.__name__}: {_describe(exc)}"
            ) from exc

    async def stream(self, request: ProviderRequest, outcome: StreamOutcome) -> AsyncIterator[str]:
        """The answer's text pieces; ``outcome`` holds the usage and provider at the end."""
        provider = self.provider
        try:
            async for piece in self._stream_from(provider, request, outcome):
                yield piece
        except ProviderUnavailable as exc:
            if outcome.text:
                raise  # part of the answer is out: it is kept, the break is reported
            if not self._can_fall_back:
                raise _unavailable(exc) from exc
            log.warning("model unavailable (%s); streaming offline", exc)
            outcome.notice = FALLBACK_NOTICE
            async for piece in self._stream_from(self.offline, request, outcome):
                yield piece
        except ProviderError as exc:
            if outcome.text:
                raise
            raise ModelAnswerInvalid(f"The AI model could not answer: {exc}") from exc

    async def _stream_from(
        self, provider: Provider, request: ProviderRequest, outcome: StreamOutcome
    ) -> AsyncIterator[str]:
        outcome.provider, outcome.model, outcome.offline = (
            provider.name,
            provider.model,
            provider.offline,
        )
        if provider.offline and outcome.notice is None:
            outcome.notice = getattr(provider, "notice", None)
        delta: Delta
        async for delta in provider.stream(request):
            if delta.prompt_tokens is not None:
                outcome.prompt_tokens = delta.prompt_tokens
            if delta.completion_tokens is not None:
                outcome.completion_tokens = delta.completion_tokens
            if not delta.text:
                continue
            room = self.max_answer_chars - len(outcome.text)
            if room <= 0:
                break
            piece = delta.text[:room]
            outcome.text += piece
            yield piece
        if outcome.prompt_tokens is None:
            outcome.prompt_tokens = (
                0 if provider.offline else estimate_prompt_tokens(request.messages)
            )


@dataclass
class StreamOutcome:
    """What a stream produced, filled in as it goes (valid even if it was cut short)."""

    text: str = ""
    provider: str = ""
    model: str = ""
    offline: bool = False
    notice: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def completion(self) -> Completion:
        return Completion(
            text=self.text,
            prompt_tokens=self.prompt_tokens or 0,
            completion_tokens=(
                self.completion_tokens
                if self.completion_tokens is not None
                else estimate_tokens(self.text)
            ),
            provider=self.provider,
            model=self.model,
            offline=self.offline,
            notice=self.notice,
        )


def _unavailable(exc: ProviderUnavailable) -> ModelUnavailable:
    return ModelUnavailable(
        "The AI tutor's model is unavailable; try again shortly.",
        headers={"Retry-After": str(max(1, round(exc.retry_after)))},
    )


def parse_json(text: str, schema: type[M]) -> M:
    """The first JSON object in ``text`` (code fences and chatter around it ignored)."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object in the answer")
    return schema.model_validate(json.loads(text[start : end + 1]))


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
    return str(exc)[:300]


def cited(text: str, passages: list[Passage]) -> list[Passage]:
    """The passages an answer cites with ``[n]``; all of them when it cites none."""
    numbers = {int(n) for n in _CITATION.findall(text)}
    chosen = [p for i, p in enumerate(passages, start=1) if i in numbers]
    return chosen or list(passages)
