"""Outbox → relay → JetStream → consumer + inbox, against real PostgreSQL and NATS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from nats.js.api import PubAck
from nats.js.errors import NotFoundError
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from sqlalchemy import Row, select, text

from unpuzzle_common.events import (
    DLQ_CONSUMER,
    DLQ_DELIVERIES,
    DLQ_REASON,
    Envelope,
    EventConsumer,
    OutboxRelay,
    RelayPublishError,
    UserRegistered,
    add_event,
    create_event_tables,
    dlq_stream_name,
    ensure_service_stream,
    subject_for,
)
from unpuzzle_common.testing import database_admin_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from events_fixtures import EventsEnv, events_env, eventually, span_exporter

__all__ = ["events_env"]


class SimulatedCrash(Exception):
    """Stands for the process dying at an inconvenient moment."""


def _user() -> UserRegistered:
    return UserRegistered(
        user_id=uuid.uuid4(), email="ada@example.com", full_name="Ada", roles=["student"]
    )


async def _write_event(env: EventsEnv, data: Any = None) -> Envelope:
    async with env.sessions() as session, session.begin():
        return await add_event(session, env.outbox, data or _user(), source="auth")


async def _unpublished(env: EventsEnv) -> list[Row[Any]]:
    async with env.sessions() as session:
        t = env.outbox
        return list((await session.execute(select(t).where(t.c.published_at.is_(None)))).all())


async def _stream_messages(env: EventsEnv, stream: str | None = None) -> int:
    return (await env.js.stream_info(stream or env.stream)).state.messages


@contextlib.asynccontextmanager
async def _running(worker: OutboxRelay | EventConsumer) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- 1. outbox, relay, LISTEN/NOTIFY ------------------------------------------------------


async def test_rolled_back_event_is_not_written_committed_one_is_published(
    events_env: EventsEnv,
) -> None:
    env = events_env
    with contextlib.suppress(SimulatedCrash):
        async with env.sessions() as session, session.begin():
            await add_event(session, env.outbox, _user(), source="auth")
            raise SimulatedCrash
    assert await env.count(env.outbox) == 0

    first = await _write_event(env)
    relay = env.relay(poll_interval=30.0)
    async with _running(relay):
        # The first event goes out in the relay's start-up drain (it is already listening).
        await eventually(lambda: _none_unpublished(env))
        # The second can only be seen that fast through NOTIFY: the poll is 30 s away.
        started = time.monotonic()
        second = await _write_event(env)
        await eventually(lambda: _none_unpublished(env), timeout=3.0)
        woke_after = time.monotonic() - started
    assert woke_after < 2.0, woke_after

    assert await _stream_messages(env) == 2
    for seq, envelope in enumerate((first, second), start=1):
        raw = await env.js.get_msg(env.stream, seq)
        assert raw.subject == subject_for(env.prefix, "user.registered.v1")
        assert raw.headers["Nats-Msg-Id"] == str(envelope.id)
        assert Envelope.from_json(raw.data) == envelope
    async with env.sessions() as session:
        rows = (await session.execute(select(env.outbox).order_by(env.outbox.c.id))).all()
    assert [r.event_id for r in rows] == [first.id, second.id]
    assert all(r.published_at is not None and r.attempts == 1 for r in rows)
    assert _metric("events_published_total", service=env.service, type="user.registered.v1") == 2
    assert _metric("outbox_lag_events", service=env.service) == 0


async def test_create_event_tables_is_idempotent(events_env: EventsEnv) -> None:
    env = events_env
    async with env.engine.begin() as conn:
        await conn.run_sync(create_event_tables, env.service)  # second time: no error
        indexes = (
            (
                await conn.execute(
                    text(
                        "SELECT indexdef FROM pg_indexes"
                        " WHERE schemaname = :s AND tablename = 'outbox'"
                    ),
                    {"s": env.service},
                )
            )
            .scalars()
            .all()
        )
    assert any("WHERE (published_at IS NULL)" in d for d in indexes), indexes
    assert any("UNIQUE" in d and "event_id" in d for d in indexes), indexes


async def test_drop_event_tables_undoes_create(events_env: EventsEnv) -> None:
    from unpuzzle_common.events.outbox import drop_event_tables

    env = events_env
    count = text(
        "SELECT count(*) FROM pg_tables WHERE schemaname = :s AND tablename IN ('outbox', 'inbox')"
    )
    async with env.engine.begin() as conn:
        await conn.run_sync(drop_event_tables, env.service)
        dropped = (await conn.execute(count, {"s": env.service})).scalar()
        await conn.run_sync(create_event_tables, env.service)
        created = (await conn.execute(count, {"s": env.service})).scalar()
    assert (dropped, created) == (0, 2)


async def _none_unpublished(env: EventsEnv) -> bool:
    return not await _unpublished(env)


async def test_relay_reconnects_its_listener(events_env: EventsEnv) -> None:
    env = events_env
    relay = env.relay(poll_interval=30.0)
    async with _running(relay):
        await eventually(lambda: _listening(relay))
        old_pid = relay._listener.info.backend_pid  # type: ignore[union-attr]
        with psycopg.connect(database_admin_url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
        await eventually(lambda: _listening(relay, other_than=old_pid), timeout=3.0)
        started = time.monotonic()
        await _write_event(env)
        await eventually(lambda: _none_unpublished(env), timeout=3.0)
        assert time.monotonic() - started < 2.0


async def _listening(relay: OutboxRelay, other_than: int | None = None) -> bool:
    listener = relay._listener
    return listener is not None and listener.info.backend_pid != other_than


async def test_relay_keeps_order_and_retries_when_publishing_fails(events_env: EventsEnv) -> None:
    """No stream takes payment.* yet: the row stays, is retried, and goes out once it can."""
    from unpuzzle_common.events import PaymentSucceeded

    env = events_env
    payment = PaymentSucceeded(
        payment_id=uuid.uuid4(), user_id=uuid.uuid4(), course_id=uuid.uuid4(),
        amount=1999, currency="usd",
    )  # fmt: skip
    await _write_event(env, payment)
    await _write_event(env)  # queued behind it
    relay = env.relay(poll_interval=0.2, publish_timeout=0.5)
    with pytest.raises(RelayPublishError):
        await relay.publish_pending()
    rows = await _unpublished(env)
    assert len(rows) == 2
    assert rows[0].attempts == 1 and rows[0].last_error
    async with _running(relay):
        await asyncio.sleep(0.3)
        await ensure_service_stream(env.js, env.prefix, "payments")
        await eventually(lambda: _none_unpublished(env), timeout=5.0)


# -- 2. relay crash between PubAck and marking the row --------------------------------------


class CrashAfterPublish(OutboxRelay):
    async def _after_publish(self, row: Row[Any], ack: PubAck) -> None:
        raise SimulatedCrash


async def test_relay_crash_after_publish_delivers_exactly_once(events_env: EventsEnv) -> None:
    env = events_env
    envelope = await _write_event(env)

    crashing = env.relay(CrashAfterPublish)
    with pytest.raises(SimulatedCrash):
        await crashing.publish_pending()
    assert crashing.published == 1  # it reached JetStream...
    assert [r.event_id for r in await _unpublished(env)] == [envelope.id]  # ...but is unmarked

    second = env.relay()
    assert await second.publish_pending() == 1
    assert second.duplicates == 1  # published again; JetStream dropped it by Nats-Msg-Id
    assert await _unpublished(env) == []
    assert await _stream_messages(env) == 1

    # Beyond the duplicate window JetStream cannot help: the inbox does.
    raw = await env.js.get_msg(env.stream, 1)
    await env.js.publish(
        raw.subject, raw.data, headers={**raw.headers, "Nats-Msg-Id": "late-" + str(envelope.id)}
    )
    assert await _stream_messages(env) == 2

    consumer = env.consumer(name="courses_user")
    async with _running(consumer):
        await eventually(lambda: _settled(env, "courses_user", consumed=2))
    assert await env.count(env.effects) == 1
    assert await env.count(env.inbox) == 1
    labels = {"service": env.service, "consumer": "courses_user"}
    assert _metric("events_consumed_total", result="applied", **labels) == 1
    assert _metric("events_consumed_total", result="duplicate", **labels) == 1


async def _settled(env: EventsEnv, consumer: str, *, consumed: int) -> bool:
    try:
        info = await env.js.consumer_info(env.stream, consumer)
    except NotFoundError:  # not created yet
        return False
    return (
        info.num_ack_pending == 0
        and info.num_pending == 0
        and info.delivered.stream_seq >= consumed
    )


# -- 3. consumer crash between commit and ack -----------------------------------------------


class CrashBeforeFirstAck(EventConsumer):
    crashes = 0

    async def _before_ack(self, msg: Any, envelope: Envelope) -> None:
        if self.crashes == 0:
            self.crashes += 1
            raise SimulatedCrash


async def test_consumer_crash_before_ack_applies_once(events_env: EventsEnv) -> None:
    env = events_env
    await _write_event(env)
    await env.relay().publish_pending()

    consumer = env.consumer(CrashBeforeFirstAck, name="courses_user", ack_wait=1.0)
    assert isinstance(consumer, CrashBeforeFirstAck)
    labels = {"service": env.service, "consumer": "courses_user"}
    async with _running(consumer):
        await eventually(lambda: _metric_at_least("duplicate", labels), timeout=6.0)
        await eventually(lambda: _settled(env, "courses_user", consumed=1))
    assert consumer.crashes == 1
    assert await env.count(env.effects) == 1
    assert await env.count(env.inbox) == 1
    assert _metric("events_consumed_total", result="applied", **labels) == 1
    assert _metric("events_consumed_total", result="duplicate", **labels) == 1


async def _metric_at_least(result: str, labels: dict[str, str], value: float = 1) -> bool:
    return _metric("events_consumed_total", result=result, **labels) >= value


# -- 4. dead letters ------------------------------------------------------------------------


async def test_failing_handler_ends_in_dead_letter_subject(events_env: EventsEnv) -> None:
    env = events_env

    async def always_fails(session: Any, envelope: Envelope) -> None:
        await env.record_effect(session, envelope)  # rolled back each time
        raise RuntimeError("courses cannot apply this")

    envelope = await _write_event(env)
    await env.relay().publish_pending()
    consumer = env.consumer(
        name="courses_user", handler=always_fails, max_deliver=3, backoff=[0.05]
    )
    labels = {"service": env.service, "consumer": "courses_user"}
    dlq = dlq_stream_name(env.prefix)
    async with _running(consumer):
        await eventually(lambda: _metric_at_least("dead_lettered", labels))
        await eventually(lambda: _settled(env, "courses_user", consumed=1))
    assert await _stream_messages(env, dlq) == 1
    dead = await env.js.get_msg(dlq, 1)
    assert dead.subject == f"{env.prefix}.dlq.courses_user"
    assert "RuntimeError: courses cannot apply this" in dead.headers[DLQ_REASON]
    assert dead.headers[DLQ_CONSUMER] == "courses_user"
    assert dead.headers[DLQ_DELIVERIES] == "3"
    assert Envelope.from_json(dead.data).id == envelope.id
    assert await env.count(env.effects) == 0
    assert await env.count(env.inbox) == 0
    assert _metric("events_consumed_total", result="failed", **labels) == 2
    assert _metric("events_consumed_total", result="dead_lettered", **labels) == 1


async def test_unparseable_message_is_dead_lettered_at_once(events_env: EventsEnv) -> None:
    env = events_env
    await env.js.publish(f"{env.prefix}.user.registered.v1", b"{not json")
    consumer = env.consumer(name="courses_user", max_deliver=5)
    labels = {"service": env.service, "consumer": "courses_user"}
    async with _running(consumer):
        await eventually(lambda: _metric_at_least("dead_lettered", labels))
    dead = await env.js.get_msg(dlq_stream_name(env.prefix), 1)
    assert dead.headers[DLQ_REASON].startswith("unparseable envelope")
    assert dead.headers[DLQ_DELIVERIES] == "1"


# -- 5. trace context -----------------------------------------------------------------------


async def test_trace_context_flows_from_add_event_to_handler(events_env: EventsEnv) -> None:
    env = events_env
    exporter = span_exporter()
    tracer = trace.get_tracer("test")
    seen: list[int] = []

    async def handler(session: Any, envelope: Envelope) -> None:
        seen.append(trace.get_current_span().get_span_context().trace_id)
        await env.record_effect(session, envelope)

    with tracer.start_as_current_span("POST /api/v1/auth/signup") as request_span:
        trace_id = request_span.get_span_context().trace_id
        envelope = await _write_event(env)
    assert envelope.traceparent and f"{trace_id:032x}" in envelope.traceparent

    await env.relay().publish_pending()  # outside the request's context
    consumer = env.consumer(name="courses_user", handler=handler)
    async with _running(consumer):
        await eventually(lambda: _settled(env, "courses_user", consumed=1))
    assert seen == [trace_id]

    spans = {
        s.kind: s
        for s in exporter.get_finished_spans()
        if s.context.trace_id == trace_id and s.kind in (SpanKind.PRODUCER, SpanKind.CONSUMER)
    }
    producer, consumer_span = spans[SpanKind.PRODUCER], spans[SpanKind.CONSUMER]
    assert producer.parent.span_id == request_span.get_span_context().span_id
    assert consumer_span.parent.span_id == producer.context.span_id
    assert producer.attributes["messaging.message.id"] == str(envelope.id)
    stored = json.loads((await env.js.get_msg(env.stream, 1)).data)
    assert stored["traceparent"] == envelope.traceparent
