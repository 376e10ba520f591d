"""Grounding text split into passages and kept in the full-text index.

Lesson text (from ``course.published.v1`` lessons) and transcripts (from
``media.processed.v1``) are cut at sentence boundaries into passages of about
``passage_chars`` characters. Transcript passages keep the time span of the cues they
hold; a transcript is indexed by ``media_id`` alone and reaches a course through the
lessons that show that media (``course_lessons.media_id``), so it may arrive before or
after the course that uses it.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import nh3
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncSession

from ai_service.models import passages

LESSON = "lesson"
TRANSCRIPT = "transcript"

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SPACES = re.compile(r"\s+")
# Block-level tags separate words: "</p><p>" must not glue two sentences together.
_BLOCK_TAG = re.compile(
    r"<(/?(?:p|div|br|hr|li|ul|ol|h[1-6]|tr|td|th|table|section|article|blockquote|pre))\b",
    re.IGNORECASE,
)
# WebVTT / SRT cue timing: "00:01:02.500 --> 00:01:05.000" (hours optional, "," or ".").
_CUE_TIME = re.compile(
    r"^\s*((?:\d+:)?\d{1,2}:\d{2}(?:[.,]\d{1,3})?)\s*-->\s*((?:\d+:)?\d{1,2}:\d{2}(?:[.,]\d{1,3})?)"
)


@dataclass(frozen=True)
class TimedText:
    """A piece of transcript and when it is spoken (seconds from the start)."""

    text: str
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class PassageText:
    """One passage to index."""

    content: str
    start_seconds: float | None = None
    end_seconds: float | None = None


class TranscriptSegment(BaseModel):
    """One timed segment, as an optional ``transcript_segments`` list may carry them."""

    model_config = ConfigDict(extra="ignore")

    start: float = Field(ge=0)
    end: float = Field(ge=0)
    text: str


def plain_text(content: str) -> str:
    """Lesson content (sanitised HTML or plain text) as one line of plain text."""
    stripped = nh3.clean(_BLOCK_TAG.sub(r" <\1", content), tags=set())
    return _SPACES.sub(" ", html.unescape(stripped)).strip()


def sentences(text: str) -> list[str]:
    """The sentences of a plain text (split after ``.``, ``!`` or ``?``)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _cut_long(sentence: str, size: int) -> list[str]:
    if len(sentence) <= size:
        return [sentence]
    parts: list[str] = []
    current = ""
    for word in sentence.split(" "):
        if current and len(current) + 1 + len(word) > size:
            parts.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        parts.append(current)
    return parts


def split_text(text: str, size: int) -> list[PassageText]:
    """Plain text cut into passages of at most ``size`` characters, at sentence ends."""
    return split_timed([TimedText(text)], size)


def split_timed(pieces: Sequence[TimedText], size: int) -> list[PassageText]:
    """Timed pieces grouped into passages of at most ``size`` characters.

    A passage spans from the start of its first piece to the end of its last. Pieces
    without times (plain text) give passages without times.
    """
    result: list[PassageText] = []
    buffer: list[str] = []
    start: float | None = None
    end: float | None = None

    def flush() -> None:
        nonlocal buffer, start, end
        if buffer:
            result.append(PassageText(" ".join(buffer), start, end))
        buffer, start, end = [], None, None

    for piece in pieces:
        for sentence in sentences(_SPACES.sub(" ", piece.text).strip()):
            for chunk in _cut_long(sentence, size):
                if buffer and len(" ".join(buffer)) + 1 + len(chunk) > size:
                    flush()
                if not buffer:
                    start = piece.start
                buffer.append(chunk)
                end = piece.end if piece.end is not None else end
    flush()
    return result


def _seconds(stamp: str) -> float:
    parts = stamp.replace(",", ".").split(":")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + float(part)
    return seconds


def parse_transcript(transcript: str) -> list[TimedText]:
    """A transcript as timed pieces: WebVTT/SRT cues when it has cue timings, else one piece."""
    pieces: list[TimedText] = []
    current: tuple[float, float] | None = None
    lines: list[str] = []
    for line in transcript.splitlines():
        timing = _CUE_TIME.match(line)
        if timing:
            if current and lines:
                pieces.append(TimedText(" ".join(lines), *current))
            current = (_seconds(timing.group(1)), _seconds(timing.group(2)))
            lines = []
        elif current is not None:
            stripped = line.strip()
            # Skip cue numbers (SRT) and blank separators; keep the spoken text.
            if stripped and not stripped.isdigit():
                lines.append(stripped)
    if current and lines:
        pieces.append(TimedText(" ".join(lines), *current))
    if not pieces:
        return [TimedText(transcript)] if transcript.strip() else []
    return pieces


def segments_from_event(raw: object) -> list[TimedText] | None:
    """Timed pieces from an event's optional ``transcript_segments``; None when absent/invalid."""
    if not isinstance(raw, list) or not raw:
        return None
    try:
        segments = [TranscriptSegment.model_validate(item) for item in raw]
    except ValidationError:
        return None
    return [TimedText(s.text, s.start, s.end) for s in segments if s.text.strip()]


async def index_lesson(
    session: AsyncSession,
    *,
    course_id: uuid.UUID,
    lesson_id: uuid.UUID,
    content: str | None,
    size: int,
) -> int:
    """Replace the indexed text of a lesson; returns the number of passages written."""
    await session.execute(
        delete(passages).where(passages.c.source == LESSON, passages.c.lesson_id == lesson_id)
    )
    parts = split_text(plain_text(content or ""), size)
    await _insert(
        session, parts, source=LESSON, course_id=course_id, lesson_id=lesson_id, media_id=None
    )
    return len(parts)


async def drop_lessons(session: AsyncSession, lesson_ids: Iterable[uuid.UUID]) -> None:
    """Remove the indexed text of lessons that left their course."""
    ids = list(lesson_ids)
    if ids:
        await session.execute(
            delete(passages).where(passages.c.source == LESSON, passages.c.lesson_id.in_(ids))
        )


async def index_transcript(
    session: AsyncSession, *, media_id: uuid.UUID, pieces: Sequence[TimedText], size: int
) -> int:
    """Replace the indexed transcript of a media file; returns the number of passages."""
    await session.execute(
        delete(passages).where(passages.c.source == TRANSCRIPT, passages.c.media_id == media_id)
    )
    parts = split_timed(pieces, size)
    await _insert(
        session, parts, source=TRANSCRIPT, course_id=None, lesson_id=None, media_id=media_id
    )
    return len(parts)


async def _insert(
    session: AsyncSession,
    parts: Sequence[PassageText],
    *,
    source: str,
    course_id: uuid.UUID | None,
    lesson_id: uuid.UUID | None,
    media_id: uuid.UUID | None,
) -> None:
    if not parts:
        return
    await session.execute(
        insert(passages),
        [
            {
                "source": source,
                "course_id": course_id,
                "lesson_id": lesson_id,
                "media_id": media_id,
                "position": position,
                "content": part.content,
                "start_seconds": part.start_seconds,
                "end_seconds": part.end_seconds,
            }
            for position, part in enumerate(parts)
        ],
    )
