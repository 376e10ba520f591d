"""Processing of uploaded media: the worker's job queue and what each job does.

``media.uploaded.v1`` puts a row in ``processing_jobs`` (see :mod:`media_service.events`).
:class:`MediaProcessor` claims due jobs one at a time (``SKIP LOCKED`` plus a lease, so
several workers share the queue and a crashed worker's job is taken over when its lease
lapses) and, outside any transaction:

- video and audio: ``ffprobe`` (duration, container, codecs, resolution), a JPEG
  thumbnail of a video frame, and a transcript when a transcriber is configured;
- images: dimensions and a thumbnail;
- PDFs: nothing to learn beyond what the upload knew.

Status goes ``pending → processing → ready | failed``. Success writes the results and
``media.processed.v1`` in one transaction. A file ffprobe cannot read fails at once
(retrying cannot help) and emits no event; other errors (storage, timeouts, the
transcription service) are retried with backoff up to ``processing_max_attempts``.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from media_service.content_types import AUDIO, IMAGE, VIDEO
from media_service.models import (
    FAILED,
    PENDING,
    PROCESSING,
    READY,
    media_files,
    outbox,
    processing_jobs,
)
from media_service.probing import (
    ProbeResult,
    UnreadableMedia,
    extract_audio,
    make_thumbnail,
    probe,
)
from media_service.settings import Settings
from media_service.storage import ObjectStore
from media_service.transcription import Transcriber, Transcript, TranscriptionFailed
from media_service.uploads import thumbnail_key
from unpuzzle_common.db import transaction
from unpuzzle_common.events._stop import wait_any
from unpuzzle_common.events.outbox import add_event
from unpuzzle_common.events.schemas import MediaProcessed

log = logging.getLogger(__name__)

PROCESSED = Counter(
    "media_processing_total", "Media files processed, by kind and result", ["kind", "result"]
)
PROCESSING_SECONDS = Histogram(
    "media_processing_seconds",
    "Time spent processing one media file",
    ["kind"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)


async def enqueue_processing(session: AsyncSession, media_id: uuid.UUID) -> bool:
    """Queue a media file for processing (once); False if it no longer exists."""
    exists = await session.scalar(select(media_files.c.id).where(media_files.c.id == media_id))
    if exists is None:
        return False
    await session.execute(
        pg_insert(processing_jobs).values(media_id=media_id).on_conflict_do_nothing()
    )
    return True


@dataclass
class Outcome:
    """What processing one file found."""

    duration: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    thumbnail_key: str | None = None
    transcript: str | None = None
    transcript_segments: list[dict[str, Any]] | None = None


class RetryLater(RuntimeError):
    """A failure worth another attempt (wraps the cause)."""


@dataclass(frozen=True)
class Claim:
    media: Row[Any]
    attempt: int


class MediaProcessor:
    """Runs the processing queue; :meth:`run` until stopped, :meth:`process_next` for one job."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        store: ObjectStore,
        settings: Settings,
        *,
        transcriber: Transcriber | None = None,
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._settings = settings
        self._transcriber = transcriber
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    def wake(self) -> None:
        """Look for due jobs now (called when an upload event was applied)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        """Process due jobs until stopped; idle, wait for :meth:`wake` or the poll interval."""
        stop = stop_event or self._stop
        while not (stop.is_set() or self._stop.is_set()):
            # Cleared before looking, so a wake-up that arrives meanwhile is not lost.
            self._wake.clear()
            try:
                worked = await self.process_next()
            except Exception:
                # The database or the store is down: the job stays queued (its lease lapses).
                log.exception("media processing loop failed; retrying")
                worked = False
                await wait_any((stop, self._stop), self._settings.processing_poll_interval)
            if worked:
                continue
            await wait_any((stop, self._stop, self._wake), self._settings.processing_poll_interval)

    async def process_next(self) -> bool:
        """Claim and process one due job; False when none is due."""
        claim = await self._claim()
        if claim is None:
            return False
        media, attempt = claim.media, claim.attempt
        final = attempt >= self._settings.processing_max_attempts
        started = asyncio.get_running_loop().time()
        try:
            outcome = await self._process(media, final_attempt=final)
        except UnreadableMedia as exc:
            await self._fail(media, f"unreadable media: {exc}")
            PROCESSED.labels(media.kind, "failed").inc()
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if final:
                await self._fail(media, f"gave up after {attempt} attempts: {reason}")
                PROCESSED.labels(media.kind, "failed").inc()
            else:
                await self._retry_later(media, attempt, reason)
                PROCESSED.labels(media.kind, "retry").inc()
        else:
            await self._succeed(media, outcome)
            PROCESSED.labels(media.kind, "ready").inc()
        PROCESSING_SECONDS.labels(media.kind).observe(asyncio.get_running_loop().time() - started)
        return True

    # -- the queue -----------------------------------------------------------------------

    async def _claim(self) -> Claim | None:
        j = processing_jobs
        async with transaction(self._sessions) as session:
            job = (
                await session.execute(
                    select(j.c.media_id, j.c.attempts)
                    .where(
                        j.c.not_before <= func.now(),
                        (j.c.leased_until.is_(None)) | (j.c.leased_until < func.now()),
                    )
                    .order_by(j.c.not_before)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
            ).one_or_none()
            if job is None:
                return None
            lease = timedelta(seconds=self._settings.processing_lease)
            await session.execute(
                update(j)
                .where(j.c.media_id == job.media_id)
                .values(attempts=j.c.attempts + 1, leased_until=func.now() + lease)
            )
            media = (
                await session.execute(
                    update(media_files)
                    .where(media_files.c.id == job.media_id)
                    .values(processing_status=PROCESSING, updated_at=func.now())
                    .returning(media_files)
                )
            ).one()
        log.info("processing media %s (attempt %d)", media.id, job.attempts + 1)
        return Claim(media, job.attempts + 1)

    async def _succeed(self, media: Row[Any], outcome: Outcome) -> None:
        async with transaction(self._sessions) as session:
            current = await self._lock(session, media.id)
            if current is None:
                # Deleted while we worked: drop what we made for it.
                if outcome.thumbnail_key:
                    await self._store.delete(outcome.thumbnail_key)
                return
            await session.execute(
                update(media_files)
                .where(media_files.c.id == media.id)
                .values(
                    processing_status=READY,
                    processing_error=None,
                    metadata=outcome.metadata,
                    duration=outcome.duration,
                    thumbnail_key=outcome.thumbnail_key,
                    transcript=outcome.transcript,
                    transcript_segments=outcome.transcript_segments,
                    processed_at=func.now(),
                    updated_at=func.now(),
                )
            )
            await session.execute(
                delete(processing_jobs).where(processing_jobs.c.media_id == media.id)
            )
            await add_event(
                session,
                outbox,
                MediaProcessed(
                    media_id=media.id,
                    owner_id=media.owner_id,
                    content_type=media.content_type,
                    duration=outcome.duration,
                    transcript=outcome.transcript,
                    transcript_segments=outcome.transcript_segments,
                    has_thumbnail=outcome.thumbnail_key is not None,
                ),
                source="media",
            )
        log.info("media %s ready", media.id, extra={"duration": outcome.duration})

    async def _fail(self, media: Row[Any], reason: str) -> None:
        async with transaction(self._sessions) as session:
            if await self._lock(session, media.id) is None:
                return
            await session.execute(
                update(media_files)
                .where(media_files.c.id == media.id)
                .values(
                    processing_status=FAILED,
                    processing_error=reason[:2000],
                    processed_at=func.now(),
                    updated_at=func.now(),
                )
            )
            await session.execute(
                delete(processing_jobs).where(processing_jobs.c.media_id == media.id)
            )
        log.warning("media %s failed: %s", media.id, reason)

    async def _retry_later(self, media: Row[Any], attempt: int, reason: str) -> None:
        backoff = self._settings.processing_backoff
        delay = backoff[min(attempt, len(backoff)) - 1]
        async with transaction(self._sessions) as session:
            if await self._lock(session, media.id) is None:
                return
            await session.execute(
                update(processing_jobs)
                .where(processing_jobs.c.media_id == media.id)
                .values(
                    leased_until=None,
                    last_error=reason[:2000],
                    not_before=func.now() + timedelta(seconds=delay),
                )
            )
            await session.execute(
                update(media_files)
                .where(media_files.c.id == media.id)
                .values(
                    processing_status=PENDING, processing_error=reason[:2000], updated_at=func.now()
                )
            )
        log.warning(
            "media %s: attempt %d failed (%s); retrying in %.0fs", media.id, attempt, reason, delay
        )

    @staticmethod
    async def _lock(session: AsyncSession, media_id: uuid.UUID) -> uuid.UUID | None:
        return await session.scalar(
            select(media_files.c.id).where(media_files.c.id == media_id).with_for_update()
        )

    # -- the work ------------------------------------------------------------------------

    async def _process(self, media: Row[Any], *, final_attempt: bool) -> Outcome:
        if media.kind not in (VIDEO, AUDIO, IMAGE):
            return Outcome()
        s = self._settings
        with tempfile.TemporaryDirectory(prefix="media-", dir=s.work_dir) as tmp:
            folder = Path(tmp)
            original = folder / "original"
            await self._store.download(media.storage_key, original)
            facts = await probe(original, ffprobe=s.ffprobe_path, time_limit=s.probe_timeout)
            outcome = Outcome(
                duration=facts.duration if media.kind != IMAGE else None,
                metadata=_visible_metadata(facts, media.kind),
            )
            if facts.has_video:
                outcome.thumbnail_key = await self._thumbnail(
                    media, original, folder, facts, outcome
                )
            if media.kind in (VIDEO, AUDIO) and facts.has_audio and self._transcriber is not None:
                transcript = await self._transcribe(original, folder, outcome, final_attempt)
                if transcript is not None:
                    outcome.transcript = transcript.text
                    outcome.transcript_segments = transcript.segments
        return outcome

    async def _thumbnail(
        self, media: Row[Any], original: Path, folder: Path, facts: ProbeResult, outcome: Outcome
    ) -> str | None:
        s = self._settings
        # A frame one second in (or half-way through a shorter clip) is rarely black.
        at = min(1.0, facts.duration / 2) if facts.duration else 0.0
        target = folder / "thumbnail.jpg"
        try:
            await make_thumbnail(
                original,
                target,
                ffmpeg=s.ffmpeg_path,
                at=at if media.kind == VIDEO else 0.0,
                width=s.thumbnail_width,
                time_limit=s.thumbnail_timeout,
            )
        except UnreadableMedia as exc:
            outcome.metadata["thumbnail_error"] = str(exc)
            return None
        key = thumbnail_key(media.id)
        await self._store.put(key, await asyncio.to_thread(target.read_bytes), "image/jpeg")
        return key

    async def _transcribe(
        self, original: Path, folder: Path, outcome: Outcome, final_attempt: bool
    ) -> Transcript | None:
        assert self._transcriber is not None
        s = self._settings
        audio = folder / "audio.mp3"
        await extract_audio(
            original, audio, ffmpeg=s.ffmpeg_path, time_limit=s.audio_extract_timeout
        )
        if audio.stat().st_size > s.transcription_max_bytes:
            outcome.metadata["transcript_error"] = "audio too long for the transcription service"
            return None
        try:
            return await self._transcriber.transcribe(audio)
        except TranscriptionFailed as exc:
            if not final_attempt:
                raise RetryLater(str(exc)) from exc
            # The transcript is an extra: on the last attempt the file is ready without it.
            outcome.metadata["transcript_error"] = str(exc)[:500]
            return None


def _visible_metadata(facts: ProbeResult, kind: str) -> dict[str, Any]:
    if kind == IMAGE:
        # An image "stream" has a codec and dimensions, but no meaningful duration.
        return {k: v for k, v in facts.metadata.items() if k in ("width", "height", "video_codec")}
    return dict(facts.metadata)
