"""Configuration of the AI tutor service (environment variables prefixed ``AI_``)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from unpuzzle_common.config import ServiceSettings


class ModelPrice(BaseModel):
    """What a model costs, in micro-dollars per million tokens (1 USD = 1_000_000)."""

    input_per_million: int = Field(ge=0)
    output_per_million: int = Field(ge=0)


#: Published list prices of a few common models; override with ``AI_PRICES`` (JSON).
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(input_per_million=150_000, output_per_million=600_000),
    "gpt-4o": ModelPrice(input_per_million=2_500_000, output_per_million=10_000_000),
    "gpt-4.1-mini": ModelPrice(input_per_million=400_000, output_per_million=1_600_000),
}


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AI_", extra="ignore")

    service_name: str = "ai"
    host: str = "127.0.0.1"
    port: int = 8104

    # -- the language model ---------------------------------------------------------------
    #: Key of the OpenAI-compatible API. Without one the offline provider answers.
    openai_api_key: SecretStr | None = None
    #: Any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp...).
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-4o-mini"
    #: Seconds one model call may take (the whole answer, or between streamed chunks).
    openai_timeout: float = 30.0
    #: Retries after a 429, a 5xx, a timeout or a connection error (so attempts = 1 + this).
    openai_max_retries: int = Field(default=2, ge=0, le=10)
    #: First retry delay in seconds; doubles each retry (a server's Retry-After wins, capped).
    openai_retry_backoff: float = 0.5
    openai_retry_max_delay: float = 8.0
    #: Ask for ``response_format=json_object`` on JSON agents (some servers refuse it).
    openai_json_mode: bool = True
    #: Consecutive failed calls that open the circuit, and seconds before one trial call.
    circuit_failure_threshold: int = Field(default=5, ge=1)
    circuit_reset_seconds: float = 30.0
    #: When the model is unavailable (circuit open, errors) answer offline instead of 503.
    fallback_to_offline: bool = True

    #: Price table for usage cost; models not listed cost nothing (self-hosted).
    prices: dict[str, ModelPrice] = Field(default_factory=lambda: dict(DEFAULT_PRICES))

    # -- answers ------------------------------------------------------------------------------
    #: Cap on the model's answer, in tokens, and on the stored text, in characters.
    max_answer_tokens: int = 700
    max_answer_chars: int = 6000
    #: Largest student message accepted (characters).
    max_message_chars: int = 4000
    #: Earlier turns of a session sent with a new message.
    history_messages: int = 6
    #: Passages retrieved to ground one answer.
    passages_per_answer: int = 4
    #: Target size of an indexed passage (characters; split at sentence boundaries).
    passage_chars: int = 700
    #: Questions in a quiz when the request does not say.
    quiz_questions: int = 3
    #: Prompt template versions in use, per template name (others: the newest file).
    prompt_versions: dict[str, int] = Field(default_factory=dict)

    # -- usage ----------------------------------------------------------------------------------
    #: Requests a day for users without a subscription (the free plan).
    free_daily_limit: int = Field(default=20, ge=0)
    #: First token of every Redis key this service writes (tests use a random one).
    redis_prefix: str = "ai"

    #: Deliveries of a consumed event before it is dead-lettered.
    consumer_max_deliver: int = 5
