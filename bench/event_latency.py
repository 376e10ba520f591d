"""Event latency: commit of a user row → a consumer's handler sees ``user.registered.v1``.

In-process, with the real pieces: a fresh ``auth`` schema (migrated) in a database of
its own, :func:`auth_service.users.register_user` (with a cheap password hash: the
hash is not what is measured) writing the user row and its outbox event in one
transaction, an :class:`OutboxRelay` woken by LISTEN/NOTIFY publishing to JetStream
on a unique subject prefix, and an :class:`EventConsumer` (durable pull, inbox)
calling a handler. Clocks are one process's ``perf_counter``.

Timestamps per event: ``commit`` (the producer's commit returned), ``published``
(the relay got the PubAck), ``delivered`` (the consumer got the message), ``handled``
(the handler ran, inside the inbox transaction). The headline is commit → handled.

- *idle*: one event at a time: commit, wait until it is handled, pause, next.
- *burst*: ``burst`` transactions started at once.

The consumer runs with :class:`EventConsumer`'s defaults unless told otherwise
(``--consumer-batch``, ``--consumer-fetch-timeout``), since those are what the
services run.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import make_url

from bench.progress import Ticker, log, warn
from bench.stats import Distribution

PHASE = "events"
REPO = Path(__file__).resolve().parent.parent
AUTH_DIR = REPO / "services" / "auth"
#: The role password the test suite also sets (the role is cluster-wide).
ROLE_PASSWORD = "test-password"


def consumer_defaults() -> tuple[int, float]:
    """``batch_size`` and ``fetch_timeout`` an EventConsumer has unless told otherwise."""
    from unpuzzle_common.events import EventConsumer

    params = inspect.signature(EventConsumer.__init__).parameters
    return int(params["batch_size"].default), float(params["fetch_timeout"].default)


@dataclass
class Timeline:
    """What happened to each event, by event id (commit by user id until matched)."""

    commit: dict[str, float] = field(default_factory=dict)  # user id -> time
    event_of: dict[str, str] = field(default_factory=dict)  # user id -> event id
    published: dict[str, float] = field(default_factory=dict)  # event id -> time
    delivered: dict[str, float] = field(default_factory=dict)
    handled: dict[str, float] = field(default_factory=dict)
    waiters: dict[str, asyncio.Future[None]] = field(default_factory=dict)

    def stage(self, users: list[str]) -> dict[str, Distribution]:
        """Latency distributions (ms) of the events of ``users`` that were handled."""
        parts: dict[str, list[float]] = {
            "commit_to_handled": [],
            "commit_to_published": [],
            "published_to_delivered": [],
            "delivered_to_handled": [],
        }
        for user in users:
            event = self.event_of.get(user)
            if event is None or event not in self.handled or user not in self.commit:
                continue
            c, h = self.commit[user], self.handled[event]
            parts["commit_to_handled"].append((h - c) * 1000)
            p, d = self.published.get(event), self.delivered.get(event)
            if p is not None:
                parts["commit_to_published"].append((p - c) * 1000)
            if p is not None and d is not None:
                parts["published_to_delivered"].append((d - p) * 1000)
            if d is not None:
                parts["delivered_to_handled"].append((h - d) * 1000)
        return {name: Distribution.of(values) for name, values in parts.items()}


@dataclass
class EventResults:
    consumer_batch: int
    consumer_fetch_timeout: float
    idle: dict[str, Distribution]
    idle_requested: int
    idle_stopped_early: bool
    burst: dict[str, Distribution]
    burst_size: int
    burst_missing: int
    burst_span_ms: float
    database: str
    prefix: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "consumer_batch": self.consumer_batch,
            "consumer_fetch_timeout": self.consumer_fetch_timeout,
            "idle": {k: v.as_dict() for k, v in self.idle.items()},
            "idle_requested": self.idle_requested,
            "idle_stopped_early": self.idle_stopped_early,
            "burst": {k: v.as_dict() for k, v in self.burst.items()},
            "burst_size": self.burst_size,
            "burst_missing": self.burst_missing,
            "burst_span_ms": self.burst_span_ms,
            "database": self.database,
            "prefix": self.prefix,
        }


def fresh_auth_schema(admin_url: str, database: str) -> str:
    """Drop and re-create the ``auth`` schema in ``database``; migrate it; return its URL."""
    from unpuzzle_common.db import libpq_url, provision_service
    from unpuzzle_common.migrations import upgrade_to_head

    db_admin = (
        make_url(libpq_url(admin_url)).set(database=database).render_as_string(hide_password=False)
    )
    with contextlib.suppress(psycopg.OperationalError):  # no database yet: nothing to drop
        with psycopg.connect(db_admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS auth CASCADE"))
    url = provision_service(admin_url, service="auth", password=ROLE_PASSWORD, database=database)
    upgrade_to_head(AUTH_DIR, url)
    return url


async def run(
    *,
    admin_url: str,
    nats_url: str,
    database: str,
    idle_events: int,
    idle_budget: float,
    idle_gap: float,
    burst: int,
    consumer_batch: int | None,
    consumer_fetch_timeout: float | None,
) -> EventResults:
    from auth_service.models import inbox, outbox
    from auth_service.passwords import PasswordHashing
    from auth_service.users import register_user
    from unpuzzle_common.db import create_engine, libpq_url, session_factory
    from unpuzzle_common.events import (
        EventConsumer,
        OutboxRelay,
        connect,
        ensure_service_stream,
        jetstream_context,
        stream_name,
    )

    default_batch, default_timeout = consumer_defaults()
    batch = consumer_batch or default_batch
    fetch_timeout = consumer_fetch_timeout or default_timeout
    prefix = "bench" + secrets.token_hex(5)
    log(PHASE, "fresh auth schema", database=database)
    url = await asyncio.to_thread(fresh_auth_schema, admin_url, database)

    timeline = Timeline()

    class TimedRelay(OutboxRelay):
        async def _after_publish(self, row: Any, ack: Any) -> None:
            timeline.published[str(row.event_id)] = time.perf_counter()

    class TimedConsumer(EventConsumer):
        async def handle(self, msg: Any) -> str:
            event_id = (msg.headers or {}).get("Nats-Msg-Id")
            if event_id:
                timeline.delivered.setdefault(event_id, time.perf_counter())
            return await super().handle(msg)

    async def handler(session: Any, envelope: Any) -> None:
        now = time.perf_counter()
        event_id, user = str(envelope.id), envelope.subject
        timeline.handled.setdefault(event_id, now)
        timeline.event_of[user] = event_id
        waiter = timeline.waiters.get(user)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    producer_engine = create_engine(url, pool_size=max(4, min(16, burst)), application_name="bench")
    relay_engine = create_engine(url, pool_size=4, application_name="bench-relay")
    consumer_engine = create_engine(url, pool_size=4, application_name="bench-consumer")
    producer = session_factory(producer_engine)
    nc = await connect(nats_url, "bench-events")
    js = jetstream_context(nc)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    # Cheap hashing: the hash is not part of what is measured here (signin measures it).
    hashing = PasswordHashing(time_cost=1, memory_cost=8, parallelism=1)

    async def commit_one(tag: str) -> str:
        email = f"ev-{tag}-{uuid.uuid4().hex[:12]}@example.com"
        async with producer() as session:
            async with session.begin():
                row = await register_user(
                    session,
                    hashing,
                    email=email,
                    password="Event-bench-Pa55phrase",
                    full_name="Event Bench",
                    roles=["student"],
                )
                user = str(row.id)
                timeline.waiters[user] = asyncio.get_running_loop().create_future()
            # Leaving session.begin() committed; nothing awaited since.
            timeline.commit[user] = time.perf_counter()
        return user

    try:
        await ensure_service_stream(js, prefix, "auth")
        relay = TimedRelay(
            session_factory(relay_engine), outbox, js, prefix, libpq_url(url), service="auth"
        )
        consumer = TimedConsumer(
            js,
            session_factory(consumer_engine),
            inbox,
            name=f"{prefix}_bench",
            stream=stream_name(prefix, "auth"),
            filter_subject=f"{prefix}.user.>",
            handler=handler,
            batch_size=batch,
            fetch_timeout=fetch_timeout,
            service="bench",
        )
        await consumer.start()
        tasks = [
            asyncio.create_task(relay.run(stop), name="relay"),
            asyncio.create_task(consumer.run(stop), name="consumer"),
        ]
        log(
            PHASE,
            "relay and consumer running",
            prefix=prefix,
            consumer_batch=batch,
            consumer_fetch_timeout=fetch_timeout,
        )
        # Warm-up: connections, prepared paths, the consumer's first fetch.
        for i in range(3):
            user = await commit_one(f"warm{i}")
            await asyncio.wait_for(timeline.waiters[user], fetch_timeout + 10)
        await asyncio.sleep(0.2)

        # -- idle: one event at a time --------------------------------------------------
        ticker = Ticker(PHASE, f"idle events ({idle_events})", idle_events)
        idle_users: list[str] = []
        started = time.monotonic()
        stopped_early = False
        for i in range(idle_events):
            if time.monotonic() - started > idle_budget:
                stopped_early = True
                warn(
                    PHASE,
                    f"idle events stopped after {i} of {idle_events}: time budget "
                    f"{idle_budget:g}s spent (events are slow to arrive)",
                )
                break
            user = await commit_one(f"idle{i}")
            idle_users.append(user)
            try:
                await asyncio.wait_for(timeline.waiters[user], fetch_timeout + 10)
            except TimeoutError:
                warn(PHASE, "an event was not handled within the wait", user_id=user)
            ticker.update(i + 1)
            if idle_gap > 0:
                await asyncio.sleep(idle_gap)
        idle = timeline.stage(idle_users)
        log(
            PHASE,
            "idle done",
            n=idle["commit_to_handled"].n,
            p50_ms=round(idle["commit_to_handled"].p50, 2),
            p99_ms=round(idle["commit_to_handled"].p99, 2),
        )

        # -- burst: many transactions at once --------------------------------------------
        await asyncio.sleep(0.5)
        log(PHASE, f"burst of {burst} concurrent transactions")
        burst_users = list(await asyncio.gather(*(commit_one(f"burst{i}") for i in range(burst))))
        waits = [timeline.waiters[u] for u in burst_users]
        _, pending = await asyncio.wait(waits, timeout=fetch_timeout + 30)
        missing = len(pending)
        if missing:
            warn(PHASE, f"{missing} burst events not handled in time")
        burst_stats = timeline.stage(burst_users)
        first_commit = min(timeline.commit[u] for u in burst_users)
        handled_times = [
            timeline.handled[timeline.event_of[u]] for u in burst_users if u in timeline.event_of
        ]
        span = (max(handled_times) - first_commit) * 1000 if handled_times else math.nan
        log(
            PHASE,
            "burst done",
            n=burst_stats["commit_to_handled"].n,
            p50_ms=round(burst_stats["commit_to_handled"].p50, 2),
            p99_ms=round(burst_stats["commit_to_handled"].p99, 2),
            span_ms=round(span, 1),
        )
        return EventResults(
            consumer_batch=batch,
            consumer_fetch_timeout=fetch_timeout,
            idle=idle,
            idle_requested=idle_events,
            idle_stopped_early=stopped_early,
            burst=burst_stats,
            burst_size=burst,
            burst_missing=missing,
            burst_span_ms=span,
            database=database,
            prefix=prefix,
        )
    finally:
        stop.set()
        if tasks:
            await asyncio.wait(tasks, timeout=fetch_timeout + 10)
            for task in tasks:
                task.cancel()
        with contextlib.suppress(Exception):
            for info in await js.streams_info():
                if info.config.name.lower().startswith(prefix):
                    await js.delete_stream(info.config.name)
        await nc.close()
        for engine in (producer_engine, relay_engine, consumer_engine):
            await engine.dispose()
        for waiter in timeline.waiters.values():
            if not waiter.done():
                waiter.cancel()
