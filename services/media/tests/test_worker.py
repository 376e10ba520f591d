"""The worker end to end over NATS JetStream: relay, processing, the access read model."""

from __future__ import annotations

import asyncio
import json
import uuid

import nats
import pytest

from media_service.worker import run_worker
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.jetstream import ensure_service_stream
from unpuzzle_common.events.schemas import CoursePublished, EnrollmentCreated, PublishedLesson
from unpuzzle_common.testing import delete_streams_with_prefix


@pytest.fixture
async def worker(settings):
    """The worker running beside the in-process app; a JetStream context for the test."""
    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream()
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop_event=stop))
    try:
        yield nc, js
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)
        await delete_streams_with_prefix(js, settings.events_prefix)
        await nc.close()


async def test_the_worker_processes_an_upload_and_publishes_the_result(
    worker, settings, uploader, client, instructor, sample_video, eventually
):
    nc, _ = worker
    published: asyncio.Queue = asyncio.Queue()
    await nc.subscribe(f"{settings.events_prefix}.media.processed.v1", cb=published.put)

    media = await uploader.upload(instructor, sample_video, "lesson.mp4", "video/mp4")

    async def ready():
        response = await client.get(f"/api/v1/media/{media['id']}", headers=instructor.headers)
        return response.json()["processing_status"] == "ready"

    assert await eventually(ready, timeout=20)
    message = await asyncio.wait_for(published.get(), timeout=10)
    envelope = json.loads(message.data)
    assert envelope["type"] == "media.processed.v1"
    assert envelope["data"]["media_id"] == media["id"]
    assert envelope["data"]["duration"] == pytest.approx(2.0, abs=0.1)
    assert message.headers["Nats-Msg-Id"] == envelope["id"]


async def test_course_events_grant_enrolled_students_the_media(
    worker, settings, uploader, client, instructor, student, pdf_bytes, eventually
):
    _, js = worker
    media = await uploader.upload(instructor, pdf_bytes(300))
    course_id = uuid.uuid4()
    await ensure_service_stream(js, settings.events_prefix, "courses")
    for data in (
        CoursePublished(
            course_id=course_id,
            instructor_id=instructor.id,
            price=0,
            currency="usd",
            lessons=[
                PublishedLesson(
                    lesson_id=uuid.uuid4(), title="Intro", media_id=uuid.UUID(media["id"])
                )
            ],
        ),
        EnrollmentCreated(
            enrollment_id=uuid.uuid4(), user_id=student.id, course_id=course_id, source="free"
        ),
    ):
        envelope = Envelope.new(data, source="courses")
        await js.publish(
            f"{settings.events_prefix}.{data.event_type}",
            envelope.to_json(),
            headers={"Nats-Msg-Id": str(envelope.id)},
        )

    async def visible():
        response = await client.get(f"/api/v1/media/{media['id']}", headers=student.headers)
        return response.status_code == 200

    assert await eventually(visible, timeout=15)
