"""The worker against the real NATS: it relays payment events and consumes course events."""

from __future__ import annotations

import asyncio
import json
import uuid

from sqlalchemy import select

from payments_service.models import courses
from payments_service.worker import run_worker
from unpuzzle_common.events import ensure_service_stream, subject_for
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.schemas import CoursePublished


async def test_worker_consumes_course_events_and_relays_payment_events(
    settings, js, sessions, make_user, buy, paid, eventually
):
    received: asyncio.Queue = asyncio.Queue()
    await js._nc.subscribe(f"{settings.events_prefix}.payment.succeeded.v1", cb=received.put)
    await ensure_service_stream(js, settings.events_prefix, "courses")
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop_event=stop))
    try:
        course_id = uuid.uuid4()
        published = Envelope.new(
            CoursePublished(
                course_id=course_id, instructor_id=uuid.uuid4(), price=1999, currency="usd"
            ),
            source="courses",
        )
        await js.publish(
            subject_for(settings.events_prefix, published.type),
            published.to_json(),
            headers={"Nats-Msg-Id": str(published.id)},
        )

        async def known():
            async with sessions() as session:
                query = select(courses.c.price).where(courses.c.course_id == course_id)
                return (await session.execute(query)).scalar_one_or_none()

        assert await eventually(known) == 1999

        payment = await paid(make_user(), course_id)
        message = await asyncio.wait_for(received.get(), timeout=10)
        envelope = json.loads(message.data)
        assert envelope["type"] == "payment.succeeded.v1" and envelope["source"] == "payments"
        assert envelope["data"]["payment_id"] == payment["payment_id"]
        assert envelope["data"]["amount"] == 1999
        assert message.headers["Nats-Msg-Id"] == envelope["id"]
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=15)
