"""Processing: ffprobe facts, thumbnails, transcripts, retries and failures."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from media_service.models import processing_jobs
from media_service.processing import MediaProcessor, enqueue_processing
from media_service.storage import StorageError
from media_service.transcription import OpenAITranscriber
from unpuzzle_common.db import transaction


class FlakyStore:
    """The real store, except that ``download`` fails the first ``failures`` times or
    waits for ``gate`` (to watch the status while processing runs)."""

    def __init__(self, store, *, failures: int = 0, gate: asyncio.Event | None = None) -> None:
        self._store = store
        self.failures = failures
        self.gate = gate

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def download(self, key: str, path: Path) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.failures > 0:
            self.failures -= 1
            raise StorageError("simulated outage")
        await self._store.download(key, path)


@pytest.fixture
def process(sessions, store, settings):
    """``await process(media, store=..., transcriber=...)``: queue it and run one job."""

    async def run(media: dict, *, object_store=None, transcriber=None, settings_=None) -> bool:
        async with transaction(sessions) as session:
            await enqueue_processing(session, uuid.UUID(media["id"]))
        processor = MediaProcessor(
            sessions, object_store or store, settings_ or settings, transcriber=transcriber
        )
        return await processor.process_next()

    return run


@pytest.fixture
def fetch(client):
    async def get(user, media: dict) -> dict:
        response = await client.get(f"/api/v1/media/{media['id']}", headers=user.headers)
        assert response.status_code == 200, response.text
        return response.json()

    return get


async def test_a_video_gets_its_duration_resolution_and_thumbnail(
    uploader, instructor, sample_video, process, fetch, outbox_events
):
    media = await uploader.upload(instructor, sample_video, "lesson.mp4", "video/mp4")

    assert await process(media)

    processed = await fetch(instructor, media)
    assert processed["processing_status"] == "ready"
    assert processed["duration"] == pytest.approx(2.0, abs=0.1)
    meta = processed["metadata"]
    assert (meta["width"], meta["height"], meta["video_codec"]) == (320, 240, "h264")
    assert meta["audio_codec"] == "aac"
    thumbnail = httpx.get(processed["thumbnail_url"])
    assert thumbnail.status_code == 200
    assert thumbnail.content.startswith(b"\xff\xd8\xff")
    assert thumbnail.headers["content-type"] == "image/jpeg"
    [event] = await outbox_events("media.processed.v1")
    assert event["data"]["media_id"] == media["id"]
    assert event["data"]["duration"] == pytest.approx(2.0, abs=0.1)
    assert event["data"]["transcript"] is None


async def test_an_image_gets_its_dimensions(uploader, instructor, tmp_path, process, fetch):
    png = tmp_path / "pixel.png"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=red:size=64x48",
         "-frames:v", "1", str(png)],
        check=True,
    )  # fmt: skip
    media = await uploader.upload(instructor, png.read_bytes(), "pixel.png", "image/png")

    await process(media)

    processed = await fetch(instructor, media)
    assert processed["processing_status"] == "ready"
    assert (processed["metadata"]["width"], processed["metadata"]["height"]) == (64, 48)
    assert processed["duration"] is None
    assert processed["thumbnail_url"] is not None


async def test_a_corrupt_video_fails_and_announces_nothing(
    uploader, instructor, process, fetch, outbox_events, sessions
):
    corrupt = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
    media = await uploader.upload(instructor, corrupt, "broken.mp4", "video/mp4")

    await process(media)

    processed = await fetch(instructor, media)
    assert processed["processing_status"] == "failed"
    assert processed["processing_error"].startswith("unreadable media")
    assert await outbox_events("media.processed.v1") == []
    async with sessions() as session:
        assert (await session.execute(select(processing_jobs))).all() == []


async def test_status_shows_processing_while_the_worker_runs(
    uploader, instructor, sample_video, store, process, fetch
):
    media = await uploader.upload(instructor, sample_video, "lesson.mp4", "video/mp4")
    assert (await fetch(instructor, media))["processing_status"] == "pending"
    gate = asyncio.Event()
    running = asyncio.create_task(process(media, object_store=FlakyStore(store, gate=gate)))

    for _ in range(100):
        if (await fetch(instructor, media))["processing_status"] == "processing":
            break
        await asyncio.sleep(0.02)
    assert (await fetch(instructor, media))["processing_status"] == "processing"
    gate.set()
    await running
    assert (await fetch(instructor, media))["processing_status"] == "ready"


async def test_a_transient_failure_is_retried_with_backoff(
    uploader, instructor, sample_video, store, sessions, settings, fetch, process
):
    media = await uploader.upload(instructor, sample_video, "lesson.mp4", "video/mp4")
    flaky = FlakyStore(store, failures=1)

    await process(media, object_store=flaky)

    waiting = await fetch(instructor, media)
    assert waiting["processing_status"] == "pending"
    assert "simulated outage" in waiting["processing_error"]
    async with sessions() as session:
        job = (await session.execute(select(processing_jobs))).one()
    assert job.attempts == 1 and job.leased_until is None
    assert await MediaProcessor(sessions, flaky, settings).process_next()
    assert (await fetch(instructor, media))["processing_status"] == "ready"


async def test_processing_gives_up_after_the_last_attempt(
    uploader, instructor, sample_video, store, sessions, settings, fetch, process
):
    media = await uploader.upload(instructor, sample_video, "lesson.mp4", "video/mp4")
    limited = settings.model_copy(update={"processing_max_attempts": 2})
    down = FlakyStore(store, failures=10)

    await process(media, object_store=down, settings_=limited)
    assert await MediaProcessor(sessions, down, limited).process_next()

    processed = await fetch(instructor, media)
    assert processed["processing_status"] == "failed"
    assert processed["processing_error"].startswith("gave up after 2 attempts")


async def test_a_transcript_comes_from_the_audio_api(
    uploader, instructor, sample_video, settings, process, fetch, outbox_events
):
    seen: list[httpx.Request] = []

    def audio_api(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "text": "Hello and welcome to lesson one. Today: cells.",
                "language": "english",
                "duration": 2.0,
                "segments": [
                    {
                        "id": 0,
                        "start": 0.0,
                        "end": 1.2,
                        "text": " Hello and welcome to lesson one.",
                    },
                    {"id": 1, "start": 1.2, "end": 2.0, "text": " Today: cells."},
                ],
            },
        )

    configured = settings.model_copy(
        update={"openai_api_key": SecretStr("sk-test"), "openai_base_url": "http://openai.test/v1"}
    )
    transcriber = OpenAITranscriber(
        configured, http_client=httpx.AsyncClient(transport=httpx.MockTransport(audio_api))
    )
    media = await uploader.upload(instructor, sample_video, "lesson.mp4", "video/mp4")

    await process(media, transcriber=transcriber, settings_=configured)
    await transcriber.aclose()

    assert seen[0].url.path == "/v1/audio/transcriptions"
    assert b'name="model"' in seen[0].content and b"whisper-1" in seen[0].content
    assert b"verbose_json" in seen[0].content and b"segment" in seen[0].content
    processed = await fetch(instructor, media)
    assert processed["transcript"] == "Hello and welcome to lesson one. Today: cells."
    assert processed["has_transcript"] is True
    [event] = await outbox_events("media.processed.v1")
    assert event["data"]["transcript"] == "Hello and welcome to lesson one. Today: cells."
    assert event["data"]["transcript_segments"] == [
        {"start": 0.0, "end": 1.2, "text": "Hello and welcome to lesson one."},
        {"start": 1.2, "end": 2.0, "text": "Today: cells."},
    ]


async def test_without_timestamps_the_transcript_is_plain_text(
    uploader, instructor, sample_video, settings, process, fetch, outbox_events
):
    seen: list[httpx.Request] = []

    def audio_api(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="Hello and welcome to lesson one.\n")

    configured = settings.model_copy(
        update={
            "openai_api_key": SecretStr("sk-test"),
            "openai_base_url": "http://openai.test/v1",
            "transcription_timestamps": False,
        }
    )
    transcriber = OpenAITranscriber(
        configured, http_client=httpx.AsyncClient(transport=httpx.MockTransport(audio_api))
    )
    media = await uploader.upload(instructor, sample_video, "lesson.mp4", "video/mp4")

    await process(media, transcriber=transcriber, settings_=configured)
    await transcriber.aclose()

    assert b'name="response_format"\r\n\r\ntext' in seen[0].content
    [event] = await outbox_events("media.processed.v1")
    assert event["data"]["transcript"] == "Hello and welcome to lesson one."
    assert event["data"]["transcript_segments"] is None


async def test_a_pdf_is_ready_without_probing(uploader, instructor, pdf_bytes, process, fetch):
    media = await uploader.upload(instructor, pdf_bytes(500))
    await process(media)
    processed = await fetch(instructor, media)
    assert processed["processing_status"] == "ready"
    assert json.dumps(processed["metadata"]) == "{}"
