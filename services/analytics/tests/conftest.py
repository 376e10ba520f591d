"""Fixtures of the analytics tests: a migrated ``analytics`` schema, the app in-process,
events applied through the consumer's own path.

Access tokens are minted with a key made for the test session; the app verifies them
with the real :class:`TokenVerifier`, whose key lookup knows only that key (instead of
fetching the auth service's JWKS). Everything else is the production wiring.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext
from sqlalchemy import select

from analytics_service.events import SUBSCRIPTIONS, AnalyticsConsumer
from analytics_service.main import create_app
from analytics_service.models import DERIVED_TABLES
from analytics_service.settings import Settings
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.jetstream import PRODUCED_DOMAINS
from unpuzzle_common.events.schemas import EventData
from unpuzzle_common.testing import (
    NATS_URL,
    REDIS_URL,
    Caller,
    TokenMint,
    fresh_service_database,
    jetstream_for_tests,
    truncate_schema,
    unique_prefix,
)
from unpuzzle_common.testing import (
    eventually as poll_until,
)

SERVICE_DIR = Path(__file__).resolve().parents[1]
ISSUER = "unpuzzle-auth"
AUDIENCE = "unpuzzle-api"
KID = "analytics-test-key"

#: Which service produces each event domain (the envelope's ``source``).
PRODUCER_OF = {domain: service for service, ds in PRODUCED_DOMAINS.items() for domain in ds}


@pytest.fixture(scope="session")
def analytics_database_url() -> str:
    return fresh_service_database("analytics", SERVICE_DIR)


@pytest.fixture(scope="session")
def settings(analytics_database_url: str) -> Settings:
    return Settings(
        database_url=analytics_database_url,
        redis_url=REDIS_URL,
        nats_url=NATS_URL,
        events_prefix=unique_prefix(),
        db_pool_size=5,
        consumer_fetch_timeout=0.2,
    )


@pytest.fixture(scope="session")
def mint() -> TokenMint:
    return TokenMint(KID, issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture(scope="session")
async def running_app(settings: Settings, mint: TokenMint) -> AsyncIterator[Any]:
    """One app for the session (starting one per test would dominate the suite's time)."""
    application = create_app(settings, token_verifier=mint.verifier())
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def app(running_app) -> Any:
    """The app over an empty schema."""
    truncate_schema("analytics")
    return running_app


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://analytics.test") as c:
        yield c


@pytest.fixture
def sessions(app):
    return app.state.analytics.sessions


@pytest.fixture
def make_caller(mint: TokenMint) -> Callable[..., Caller]:
    return mint.caller


def envelope(data: EventData, at: datetime | str, *, event_id: uuid.UUID | None = None) -> Envelope:
    """An event as its producer would send it, happening at ``at``."""
    when = datetime.fromisoformat(at) if isinstance(at, str) else at
    base = Envelope.new(data, source=PRODUCER_OF[data.event_type.split(".")[0]])
    # Validated like a received envelope: the time is normalised to UTC.
    return Envelope.model_validate({**base.model_dump(), "time": when, "id": event_id or base.id})


@pytest.fixture
def consumer_for(app, settings: Settings):
    return consumer_factory(app, settings)


def consumer_factory(app, settings: Settings) -> Callable[..., AnalyticsConsumer]:
    """``consumer_for("courses")``: the consumer of a producer's stream, without NATS.

    Its ``apply(envelope)`` and ``apply_batch(envelopes)`` do what a delivery does:
    inbox, facts and rollups in the consumer's own transaction.
    """

    def make(producer: str, js: JetStreamContext | None = None) -> AnalyticsConsumer:
        subscription = next(s for s in SUBSCRIPTIONS if s.producer == producer)
        return AnalyticsConsumer(
            js,  # type: ignore[arg-type]
            app.state.analytics.sessions,
            subscription,
            prefix=settings.events_prefix,
            fetch_timeout=0.2,
            ack_wait=5.0,
        )

    return make


@pytest.fixture
def deliver(consumer_for) -> Callable[[Sequence[Envelope]], Any]:
    """Apply envelopes one by one, each by the consumer of the stream it travels on."""
    consumers: dict[str, AnalyticsConsumer] = {}

    async def apply(envelopes: Sequence[Envelope]) -> list[bool]:
        results = []
        for env in envelopes:
            consumer = consumers.setdefault(env.source, consumer_for(env.source))
            results.append(await consumer.apply(env))
        return results

    return apply


@pytest.fixture
def snapshot(sessions) -> Callable[[], Any]:
    """Every row of every table derived from the facts, sorted, for comparisons."""

    async def take() -> dict[str, list[tuple]]:
        out = {}
        async with sessions() as session:
            for table in DERIVED_TABLES:
                rows = (await session.execute(select(table))).all()
                out[table.name] = sorted((tuple(r) for r in rows), key=repr)
        return out

    return take


@pytest.fixture
async def js(settings: Settings) -> AsyncIterator[JetStreamContext]:
    """JetStream on the test NATS; the streams of this test's prefix are removed after."""
    async with jetstream_for_tests(settings.events_prefix, "analytics-tests") as context:
        yield context


@pytest.fixture
def eventually():
    """``await eventually(async_check)``: poll until truthy, fail after a timeout."""
    return poll_until


@pytest.fixture
def make_envelope():
    """``make_envelope(data, at, event_id=None)`` (see :func:`envelope`)."""
    return envelope


@dataclass
class Scenario:
    """A scripted stream: two courses over two days, with duplicates and late arrivals.

    ``stream`` is in delivery order. Day 1 is 2026-03-01, day 2 is 2026-03-02 (UTC).
    """

    instructor: uuid.UUID
    course_a: uuid.UUID  # usd, owned by ``instructor``
    course_b: uuid.UUID  # eur, another instructor's
    students: list[uuid.UUID]
    stream: list[Envelope]


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    from unpuzzle_common.events import schemas as s

    instructor, other = uuid.uuid4(), uuid.uuid4()
    a, b = uuid.uuid4(), uuid.uuid4()
    u1, u2, u3, u4 = (uuid.uuid4() for _ in range(4))
    p1, p2 = uuid.uuid4(), uuid.uuid4()
    lesson1, lesson2 = uuid.uuid4(), uuid.uuid4()

    def enrollment(model, user, course, source="free"):
        return model(enrollment_id=uuid.uuid4(), user_id=user, course_id=course, source=source)

    def lesson(user, lesson_id, course=a):
        return s.LessonCompleted(user_id=user, course_id=course, lesson_id=lesson_id)

    published_a = envelope(
        s.CoursePublished(
            course_id=a, instructor_id=instructor, price=1999, currency="usd", title="Algebra"
        ),
        "2026-03-01T08:00:00+00:00",
    )
    registered = envelope(
        s.UserRegistered(user_id=u1, email="u1@example.com", full_name="U One", roles=["student"]),
        "2026-03-01T07:00:00+00:00",
    )
    enrolled_u1 = envelope(enrollment(s.EnrollmentCreated, u1, a), "2026-03-01T09:00:00+00:00")
    u1_lesson1 = envelope(lesson(u1, lesson1), "2026-03-01T10:00:00+00:00")
    stream = [
        registered,
        envelope(
            s.UserRegistered(user_id=u2, email="u2@example.com", full_name="U Two", roles=[]),
            "2026-03-01T07:30:00+00:00",
        ),
        published_a,
        envelope(
            s.CoursePublished(
                course_id=b, instructor_id=other, price=500, currency="eur", title="Botany"
            ),
            "2026-03-01T08:00:00+00:00",
        ),
        enrolled_u1,
        envelope(
            s.PaymentSucceeded(payment_id=p1, user_id=u2, course_id=a, amount=1999, currency="usd"),
            "2026-03-01T09:10:00+00:00",
        ),
        envelope(
            enrollment(s.EnrollmentCreated, u2, a, source=str(p1)), "2026-03-01T09:10:01+00:00"
        ),
        enrolled_u1,  # duplicate delivery
        u1_lesson1,
        envelope(lesson(u1, lesson2), "2026-03-01T11:00:00+00:00"),  # same learner, same day
        # 01:30 at +05:00 is 20:30 UTC the day before: counts on day 1.
        envelope(lesson(u2, lesson1), "2026-03-02T01:30:00+05:00"),
        envelope(
            s.AiUsageRecorded(user_id=u1, tokens=120, cost_micro_usd=2400, agent="chat"),
            "2026-03-01T12:00:00+00:00",
        ),
        envelope(
            s.MediaUploaded(media_id=uuid.uuid4(), owner_id=instructor, content_type="video/mp4"),
            "2026-03-01T06:00:00+00:00",
        ),
        # Day 2.
        envelope(lesson(u2, lesson2), "2026-03-02T09:00:00+00:00"),
        envelope(s.ReviewCreated(course_id=a, user_id=u1, rating=5), "2026-03-02T10:00:00+00:00"),
        envelope(s.ReviewCreated(course_id=a, user_id=u2, rating=4), "2026-03-02T10:05:00+00:00"),
        envelope(
            s.CourseCompleted(user_id=u1, course_id=a, lesson_id=lesson2),
            "2026-03-02T11:00:00+00:00",
        ),
        # A refund that does not name its currency: it is the payment's (usd).
        envelope(
            s.PaymentRefunded(payment_id=p1, user_id=u2, course_id=a, amount=1999),
            "2026-03-02T12:00:00+00:00",
        ),
        envelope(
            enrollment(s.EnrollmentRevoked, u2, a, source=str(p1)), "2026-03-02T12:00:01+00:00"
        ),
        envelope(
            s.PaymentSucceeded(payment_id=p2, user_id=u4, course_id=b, amount=500, currency="eur"),
            "2026-03-02T13:00:00+00:00",
        ),
        envelope(
            enrollment(s.EnrollmentCreated, u4, b, source=str(p2)), "2026-03-02T13:00:01+00:00"
        ),
        envelope(lesson(u4, uuid.uuid4(), course=b), "2026-03-02T14:00:00+00:00"),
        envelope(
            s.SubscriptionActivated(user_id=u3, plan="pro", ai_daily_limit=200),
            "2026-03-02T15:00:00+00:00",
        ),
        envelope(
            s.AiUsageRecorded(user_id=u3, tokens=80, cost_micro_usd=1600, agent="hint"),
            "2026-03-02T15:30:00+00:00",
        ),
        # Late arrivals, delivered after day 2's events: they count on day 1.
        envelope(lesson(u3, lesson1), "2026-03-01T23:59:59+00:00"),
        envelope(enrollment(s.EnrollmentCreated, u3, a), "2026-03-01T23:00:00+00:00"),
        # A late, older snapshot of course A (before its title changed): ignored.
        envelope(
            s.CoursePublished(
                course_id=a, instructor_id=instructor, price=999, currency="usd", title="Old"
            ),
            "2026-02-20T08:00:00+00:00",
        ),
        # Duplicates of day 1 events, redelivered on day 2.
        u1_lesson1,
        registered,
        published_a,
    ]
    return Scenario(instructor, a, b, [u1, u2, u3, u4], stream)


async def apply_in_batches(
    make_consumer: Callable[..., AnalyticsConsumer], envelopes: Sequence[Envelope], size: int = 50
) -> list[bool]:
    """Apply envelopes as the worker would: per stream, ``size`` at a time."""
    by_source: dict[str, list[Envelope]] = {}
    for env in envelopes:
        by_source.setdefault(env.source, []).append(env)
    applied: list[bool] = []
    for source, batch in by_source.items():
        consumer = make_consumer(source)
        for start in range(0, len(batch), size):
            applied += await consumer.apply_batch(batch[start : start + size])
    return applied


@pytest.fixture
def deliver_in_batches(consumer_for):
    """``await deliver_in_batches(envelopes, size=50)`` (see :func:`apply_in_batches`)."""

    async def apply(envelopes: Sequence[Envelope], size: int = 50) -> list[bool]:
        return await apply_in_batches(consumer_for, envelopes, size)

    return apply


@pytest.fixture(scope="module")
async def loaded_app(running_app, settings: Settings, scenario: Scenario) -> Any:
    """The app over the scripted scenario, loaded once for a module of read-only tests."""
    truncate_schema("analytics")
    await apply_in_batches(consumer_factory(running_app, settings), scenario.stream)
    return running_app


@pytest.fixture
async def reader(loaded_app) -> AsyncIterator[httpx.AsyncClient]:
    """A client of :func:`loaded_app` (tests using it must not write)."""
    transport = httpx.ASGITransport(app=loaded_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://analytics.test") as c:
        yield c
