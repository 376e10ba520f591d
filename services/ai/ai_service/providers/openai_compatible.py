"""The model provider: any OpenAI-compatible chat completions API, through the ``openai`` SDK.

Every call has a timeout. 429s, 5xx answers, timeouts and connection errors are retried
with exponential backoff (a server's ``Retry-After`` is honoured, capped); the SDK's own
retries are off so that the backoff and the circuit breaker see every attempt. A call
that still fails counts as one failure of the circuit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import openai
from openai import AsyncOpenAI

from ai_service.providers.base import (
    Completion,
    Delta,
    ProviderError,
    ProviderRequest,
    ProviderUnavailable,
    estimate_prompt_tokens,
    estimate_tokens,
)
from ai_service.providers.circuit import CircuitBreaker

log = logging.getLogger(__name__)
T = TypeVar("T")

_TRANSIENT = (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError)


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, _TRANSIENT):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class OpenAICompatibleProvider:
    name = "openai"
    offline = False

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        model: str,
        timeout: float,
        max_retries: int,
        retry_backoff: float,
        retry_max_delay: float,
        json_mode: bool,
        breaker: CircuitBreaker,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.model = model
        self._client = AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )
        self._max_retries = max_retries
        self._backoff = retry_backoff
        self._max_delay = retry_max_delay
        self._json_mode = json_mode
        self.breaker = breaker
        self._sleep = sleep

    async def aclose(self) -> None:
        await self._client.close()

    def _arguments(self, request: ProviderRequest) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_tokens,
        }
        if request.json_output and self._json_mode:
            arguments["response_format"] = {"type": "json_object"}
        return arguments

    async def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        """``make()`` with retries and the circuit breaker around it."""
        self.breaker.before_call()
        attempt = 0
        while True:
            try:
                result = await make()
            except asyncio.CancelledError:
                self.breaker.abandon()  # the caller left: this says nothing about the model
                raise
            except openai.APIError as exc:
                if _is_transient(exc) and attempt < self._max_retries:
                    delay = min(self._max_delay, _retry_after(exc) or self._backoff * 2**attempt)
                    attempt += 1
                    log.warning(
                        "model call failed (%s); retry %d in %.2fs",
                        type(exc).__name__,
                        attempt,
                        delay,
                    )
                    await self._sleep(delay)
                    continue
                self.breaker.record_failure()
                if _is_transient(exc):
                    raise ProviderUnavailable(
                        f"the model did not answer: {type(exc).__name__}",
                        retry_after=_retry_after(exc) or 5.0,
                    ) from exc
                raise ProviderError(f"the model refused the request: {exc}") from exc
            self.breaker.record_success()
            return result

    async def complete(self, request: ProviderRequest) -> Completion:
        response = await self._call(
            lambda: self._client.chat.completions.create(**self._arguments(request))
        )
        if not response.choices:
            raise ProviderError("the model returned no choices")
        text = response.choices[0].message.content or ""
        usage = response.usage
        return Completion(
            text=text,
            prompt_tokens=usage.prompt_tokens
            if usage
            else estimate_prompt_tokens(request.messages),
            completion_tokens=usage.completion_tokens if usage else estimate_tokens(text),
            provider=self.name,
            model=response.model or self.model,
        )

    async def stream(self, request: ProviderRequest) -> AsyncIterator[Delta]:
        arguments = self._arguments(request)
        stream = await self._call(
            lambda: self._client.chat.completions.create(
                **arguments, stream=True, stream_options={"include_usage": True}
            )
        )
        try:
            async for chunk in stream:
                for choice in chunk.choices or ():
                    content = choice.delta.content if choice.delta else None
                    if content:
                        yield Delta(content)
                if chunk.usage is not None:
                    yield Delta(
                        prompt_tokens=chunk.usage.prompt_tokens,
                        completion_tokens=chunk.usage.completion_tokens,
                    )
        except Exception as exc:
            # Broken off mid-answer (an API error, a read timeout between chunks): the
            # circuit counts it; what was streamed stays valid.
            self.breaker.record_failure()
            raise ProviderUnavailable(f"the model stream broke: {type(exc).__name__}") from exc
        finally:
            await stream.close()
