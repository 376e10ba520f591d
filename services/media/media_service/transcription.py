"""Transcripts through the OpenAI audio API (or any server that speaks it).

Made only when ``MEDIA_OPENAI_API_KEY`` is set. The SDK retries connection errors,
429 and 5xx answers with exponential backoff (``transcription_max_retries``); what
still fails is a :class:`TranscriptionFailed` the processor may retry later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import openai

from media_service.settings import Settings


class TranscriptionFailed(RuntimeError):
    """The transcription service did not deliver a transcript."""


@dataclass(frozen=True)
class Transcript:
    """The text, and its timed segments when the service gave them (seconds)."""

    text: str
    segments: list[dict[str, Any]] | None = None


class Transcriber(Protocol):
    async def transcribe(self, audio: Path) -> Transcript: ...
    async def aclose(self) -> None: ...


class OpenAITranscriber:
    """:class:`Transcriber` on ``POST /audio/transcriptions``."""

    def __init__(self, settings: Settings, *, http_client: httpx.AsyncClient | None = None) -> None:
        assert settings.openai_api_key is not None
        self._model = settings.transcription_model
        self._timestamps = settings.transcription_timestamps
        self._client = openai.AsyncOpenAI(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            timeout=settings.transcription_timeout,
            max_retries=settings.transcription_max_retries,
            http_client=http_client,
        )

    async def transcribe(self, audio: Path) -> Transcript:
        """The transcript; with ``transcription_timestamps``, as ``verbose_json`` with its
        segments (whisper-1 gives them; models that cannot: turn the setting off)."""
        options: dict[str, Any] = (
            {"response_format": "verbose_json", "timestamp_granularities": ["segment"]}
            if self._timestamps
            else {"response_format": "text"}
        )
        try:
            with audio.open("rb") as file:
                answer = await self._client.audio.transcriptions.create(
                    model=self._model, file=(audio.name, file), **options
                )
        except openai.OpenAIError as exc:
            raise TranscriptionFailed(f"{type(exc).__name__}: {exc}") from exc
        text = answer if isinstance(answer, str) else getattr(answer, "text", "")
        return Transcript(str(text).strip(), _segments(getattr(answer, "segments", None)))

    async def aclose(self) -> None:
        await self._client.close()


def _segments(raw: Any) -> list[dict[str, Any]] | None:
    """Timed segments as ``{"start", "end", "text"}`` (seconds); None when there are none."""
    segments = []
    for segment in raw or ():
        try:
            start, end = float(segment.start), float(segment.end)
        except (AttributeError, TypeError, ValueError):
            continue
        text = str(getattr(segment, "text", "")).strip()
        if text and 0 <= start <= end:
            segments.append({"start": start, "end": end, "text": text})
    return segments or None


def make_transcriber(settings: Settings) -> Transcriber | None:
    """The configured transcriber, or None when transcripts are off."""
    return OpenAITranscriber(settings) if settings.openai_api_key is not None else None
