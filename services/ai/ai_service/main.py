"""The AI tutor service's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ai_service.answering import Answering
from ai_service.api import agents, sessions, usage
from ai_service.context import TutorContext
from ai_service.prompts import PromptLibrary
from ai_service.providers.base import Provider
from ai_service.providers.circuit import CircuitBreaker
from ai_service.providers.offline import OfflineProvider
from ai_service.providers.openai_compatible import OpenAICompatibleProvider
from ai_service.settings import Settings
from ai_service.usage import UsageLimiter
from unpuzzle_common.app import ServiceRuntime, create_service_app
from unpuzzle_common.auth import JWKSKeySource, TokenVerifier

VERSION = "1.0.0"
#: Seconds shutdown waits for streamed answers to be stored.
DRAIN_SECONDS = 10.0


def make_provider(settings: Settings) -> Provider:
    """The OpenAI-compatible model when a key is configured, else the offline provider."""
    if settings.openai_api_key is None or not settings.openai_api_key.get_secret_value():
        return OfflineProvider()
    return OpenAICompatibleProvider(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        model=settings.openai_model,
        timeout=settings.openai_timeout,
        max_retries=settings.openai_max_retries,
        retry_backoff=settings.openai_retry_backoff,
        retry_max_delay=settings.openai_retry_max_delay,
        json_mode=settings.openai_json_mode,
        breaker=CircuitBreaker(
            failure_threshold=settings.circuit_failure_threshold,
            reset_seconds=settings.circuit_reset_seconds,
        ),
    )


def make_answering(settings: Settings, provider: Provider | None = None) -> Answering:
    offline = OfflineProvider()
    return Answering(
        provider=provider or make_provider(settings),
        offline=offline,
        prompts=PromptLibrary(pinned=settings.prompt_versions),
        fallback_to_offline=settings.fallback_to_offline,
        max_answer_chars=settings.max_answer_chars,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ServiceRuntime.open(settings) as runtime:
            jwks = JWKSKeySource(settings.jwks_url)
            answering = make_answering(settings)
            tutor = TutorContext(
                settings=settings,
                sessions=runtime.sessions,
                redis=runtime.redis,
                limiter=UsageLimiter(runtime.redis, prefix=settings.redis_prefix),
                answering=answering,
            )
            app.state.runtime = runtime
            app.state.token_verifier = TokenVerifier(
                jwks, issuer=settings.jwt_issuer, audience=settings.jwt_audience
            )
            app.state.tutor = tutor
            try:
                yield
            finally:
                await tutor.background.drain(DRAIN_SECONDS)
                await tutor.answering.provider.aclose()
                await jwks.aclose()

    app = create_service_app(
        settings,
        title="Unpuzzle AI tutor",
        version=VERSION,
        description="Tutor sessions grounded in course material, learning agents (hint, "
        "quiz, reflection, learning path), streamed answers and daily usage limits.",
        lifespan=lifespan,
    )
    for module in (sessions, agents, usage):
        app.include_router(module.router)
    return app
