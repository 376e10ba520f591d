"""The worker: outbox relay to JetStream and the consumers, against the real NATS."""

from __future__ import annotations

import asyncio
import json
import uuid

from sqlalchemy import select

from courses_service.models import users
from courses_service.worker import run_worker
from unpuzzle_common.events import ensure_service_stream, stream_name, subject_for
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.schemas import UserRegistered


async def test_consumer_creates_a_missing_producer_stream_before_binding(js, consumer, settings):
    media = consumer("media", js)
    await media.start()
    try:
        info = await js.stream_info(stream_name(settings.events_prefix, "media"))
        assert info.config.subjects == [f"{settings.events_prefix}.media.>"]
        assert (await js.consumer_info(info.config.name, media.name)).config.durable_name
    finally:
        await media.close()


async def test_worker_relays_events_and_applies_consumed_ones(
    settings, js, client, make_user, make_course, sessions, eventually
):
    received: asyncio.Queue = asyncio.Queue()
    nc = js._nc
    await nc.subscribe(f"{settings.events_prefix}.course.published.v1", cb=received.put)
    # auth may not have run yet: its stream is created here as auth's relay would.
    await ensure_service_stream(js, settings.events_prefix, "auth")
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop_event=stop))
    try:
        teacher = await make_user("instructor")
        course = await make_course(teacher)
        message = await asyncio.wait_for(received.get(), timeout=10)
        envelope = json.loads(message.data)
        assert envelope["type"] == "course.published.v1" and envelope["source"] == "courses"
        assert envelope["data"]["course_id"] == course["id"]
        assert message.headers["Nats-Msg-Id"] == envelope["id"]

        user_id = uuid.uuid4()
        registered = Envelope.new(
            UserRegistered(
                user_id=user_id, email="n@example.com", full_name="From Auth", roles=["student"]
            ),
            source="auth",
        )
        await js.publish(
            subject_for(settings.events_prefix, registered.type),
            registered.to_json(),
            headers={"Nats-Msg-Id": str(registered.id)},
        )

        async def known():
            async with sessions() as session:
                return (
                    await session.execute(select(users.c.full_name).where(users.c.id == user_id))
                ).scalar_one_or_none()

        assert await eventually(known) == "From Auth"
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=15)
