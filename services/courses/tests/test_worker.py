"""The worker: outbox relay to JetStream and the consumers, against the real NATS."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

from sqlalchemy import func, insert, select

from courses_service.models import inbox, outbox, users
from courses_service.worker import run_worker
from unpuzzle_common.db import transaction
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


async def test_the_worker_prunes_old_event_rows(settings, app, sessions, eventually):
    # Rows as the relay and the consumers leave them: published outbox rows and inbox
    # rows, one of each past the retention (8 days by default). What is never pruned
    # (unpublished rows) is shown in libs/common/tests/test_housekeeping.py.
    long_ago = func.now() - timedelta(days=settings.events_retention_days + 1)
    kept = uuid.uuid4()
    async with transaction(sessions) as session:
        for event_id, at in ((uuid.uuid4(), long_ago), (kept, func.now())):
            await session.execute(
                insert(outbox).values(
                    event_id=event_id,
                    type="course.published.v1",
                    subject="pruning",
                    payload={},
                    created_at=at,
                    published_at=at,
                )
            )
            await session.execute(
                insert(inbox).values(consumer="pruning", event_id=event_id, received_at=at)
            )

    async def left() -> tuple[list, list]:
        async with sessions() as session:
            sent = await session.scalars(
                select(outbox.c.event_id).where(outbox.c.subject == "pruning")
            )
            received = await session.scalars(
                select(inbox.c.event_id).where(inbox.c.consumer == "pruning")
            )
            return list(sent), list(received)

    assert tuple(map(len, await left())) == (2, 2)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop_event=stop))
    try:

        async def pruned():
            sent, received = await left()
            return (sent, received) if len(sent) == 1 and len(received) == 1 else None

        assert await eventually(pruned) == ([kept], [kept])
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=15)
