"""The worker's consumers, over real NATS JetStream: every stream, batches, duplicates,
dead letters, and the one-by-one fallback when a batch fails."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select

from analytics_service.events import SUBSCRIPTIONS, AnalyticsConsumer
from analytics_service.models import facts, platform_daily
from analytics_service.worker import run_worker
from unpuzzle_common.events import schemas as s
from unpuzzle_common.events.consumer import DLQ_CONSUMER
from unpuzzle_common.events.envelope import subject_for
from unpuzzle_common.events.jetstream import dlq_stream_name, ensure_service_stream


async def publish(js, prefix, env, *, msg_id: str | None = None) -> None:
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    await js.publish(subject_for(prefix, env.type), env.to_json(), headers=headers)


async def count_facts(sessions) -> int:
    async with sessions() as session:
        return (await session.execute(select(func.count()).select_from(facts))).scalar_one()


async def test_the_worker_consumes_every_producing_stream(
    js, settings, sessions, make_envelope, eventually
):
    prefix = settings.events_prefix
    for sub in SUBSCRIPTIONS:
        await ensure_service_stream(js, prefix, sub.producer)
    user, course = uuid.uuid4(), uuid.uuid4()
    at = "2026-03-01T12:00:00+00:00"
    events = [
        make_envelope(s.UserRegistered(user_id=user, email="e@x.io", full_name="E", roles=[]), at),
        make_envelope(
            s.CoursePublished(course_id=course, instructor_id=user, price=0, currency="usd"), at
        ),
        make_envelope(
            s.LessonCompleted(user_id=user, course_id=course, lesson_id=uuid.uuid4()), at
        ),
        make_envelope(
            s.MediaUploaded(media_id=uuid.uuid4(), owner_id=user, content_type="a/b"), at
        ),
        make_envelope(
            s.PaymentSucceeded(
                payment_id=uuid.uuid4(), user_id=user, course_id=course, amount=100, currency="usd"
            ),
            at,
        ),
        make_envelope(s.SubscriptionActivated(user_id=user, plan="pro", ai_daily_limit=9), at),
        make_envelope(s.AiUsageRecorded(user_id=user, tokens=5, cost_micro_usd=7, agent="x"), at),
    ]
    for env in events:
        await publish(js, prefix, env)
    # The same event again, past JetStream's de-duplication (another Nats-Msg-Id):
    # the inbox has to catch it.
    await publish(js, prefix, events[2], msg_id=f"again-{uuid.uuid4()}")
    # Data that does not fit its schema goes to the dead-letter stream.
    poison = events[4].model_copy(update={"id": uuid.uuid4(), "data": {"amount": "lots"}})
    await publish(js, prefix, poison)

    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop_event=stop))
    try:
        await eventually(lambda: _equals(count_facts(sessions), len(events)))
        dead = await eventually(lambda: _dead_letters(js, prefix))
    finally:
        stop.set()
        await asyncio.wait_for(worker, 10)

    assert dead == "analytics-payments"
    async with sessions() as session:
        day = (await session.execute(select(platform_daily))).one()
    assert (day.new_users, day.lesson_completions, day.active_learners, day.ai_tokens) == (
        1,
        1,
        1,
        5,
    )


async def _equals(awaitable, expected) -> bool:
    return await awaitable == expected


async def _dead_letters(js, prefix) -> str | None:
    info = await js.stream_info(dlq_stream_name(prefix))
    if info.state.messages == 0:
        return None
    msg = await js.get_last_msg(dlq_stream_name(prefix), f"{prefix}.dlq.analytics-payments")
    return msg.headers.get(DLQ_CONSUMER) if msg.headers else None


class FailingBatches(AnalyticsConsumer):
    """A consumer whose batch transaction always fails (say, a deadlock victim)."""

    failed_batches = 0

    async def apply_facts(self, batch):
        self.failed_batches += 1
        raise RuntimeError("batch failed")


async def test_a_failed_batch_is_applied_event_by_event(
    js, settings, app, make_envelope, eventually
):
    prefix = settings.events_prefix
    await ensure_service_stream(js, prefix, "ai")
    events = [
        make_envelope(
            s.AiUsageRecorded(user_id=uuid.uuid4(), tokens=n, cost_micro_usd=n, agent="chat"),
            "2026-03-01T12:00:00+00:00",
        )
        for n in range(1, 6)
    ]
    for env in events:
        await publish(js, prefix, env)
    [subscription] = [sub for sub in SUBSCRIPTIONS if sub.producer == "ai"]
    consumer = FailingBatches(
        js,
        app.state.analytics.sessions,
        subscription,
        prefix=prefix,
        batch_size=10,
        fetch_timeout=0.2,
    )

    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await eventually(lambda: _equals(count_facts(app.state.analytics.sessions), 5))
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)

    async with app.state.analytics.sessions() as session:
        tokens = (await session.execute(select(platform_daily.c.ai_tokens))).scalar_one()
    assert tokens == 15
    assert consumer.failed_batches >= 1
