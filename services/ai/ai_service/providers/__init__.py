"""Answer providers behind one interface: an OpenAI-compatible model, offline, fallback."""

from ai_service.providers.base import (
    ChatMessage,
    Completion,
    Delta,
    Provider,
    ProviderError,
    ProviderRequest,
    ProviderUnavailable,
)

__all__ = [
    "ChatMessage",
    "Completion",
    "Delta",
    "Provider",
    "ProviderError",
    "ProviderRequest",
    "ProviderUnavailable",
]
