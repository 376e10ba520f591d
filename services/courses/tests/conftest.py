"""Fixtures of the courses service tests: a migrated ``courses`` schema, the app in-process.

Access tokens are minted with a key made for the test session; the app verifies them
with the real :class:`TokenVerifier`, whose key lookup knows only that key (instead
of fetching the auth service's JWKS). Everything else is the production wiring.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext
from sqlalchemy import func, select

from courses_service.events import SUBSCRIPTIONS, CoursesConsumer
from courses_service.main import create_app
from courses_service.models import outbox
from courses_service.settings import Settings
from courses_service.users import apply_user_snapshot
from unpuzzle_common.db import transaction
from unpuzzle_common.events.schemas import UserRegistered
from unpuzzle_common.testing import (
    NATS_URL,
    REDIS_URL,
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
KID = "courses-test-key"


@pytest.fixture(scope="session")
def courses_database_url() -> str:
    return fresh_service_database("courses", SERVICE_DIR)


@pytest.fixture(scope="session")
def settings(courses_database_url: str) -> Settings:
    return Settings(
        database_url=courses_database_url,
        redis_url=REDIS_URL,
        nats_url=NATS_URL,
        events_prefix=unique_prefix(),
        # A prefix per run: no flushing of a Redis database other suites share.
        cache_prefix=f"courses-test-{uuid.uuid4().hex[:10]}",
        db_pool_size=5,
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
    """The app over an empty schema and an empty cache."""
    truncate_schema("courses")
    await running_app.state.courses.cache.invalidate_everything()
    return running_app


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://courses.test") as c:
        yield c


@pytest.fixture
def sessions(app):
    return app.state.courses.sessions


@dataclass
class Caller:
    """A user of the platform as the tests see it: id, roles, ready-made headers."""

    id: uuid.UUID
    roles: tuple[str, ...]
    full_name: str
    headers: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def make_user(sessions, mint: TokenMint) -> Callable[..., Awaitable[Caller]]:
    """A user known to the users read model (as if auth's event had arrived), with a token."""
    counter = iter(range(1, 10_000))

    async def make(*roles: str, full_name: str | None = None) -> Caller:
        roles = roles or ("student",)
        user_id = uuid.uuid4()
        name = full_name or f"{roles[0].title()} {next(counter)}"
        async with transaction(sessions) as session:
            await apply_user_snapshot(
                session,
                UserRegistered(
                    user_id=user_id,
                    email=f"{user_id.hex[:8]}@example.com",
                    full_name=name,
                    roles=list(roles),
                ),
                event_time=datetime.now(UTC),
            )
        token = mint.token(user_id, tuple(roles))
        return Caller(user_id, tuple(roles), name, {"Authorization": f"Bearer {token}"})

    return make


@pytest.fixture
def make_course(client: httpx.AsyncClient) -> Callable[..., Awaitable[dict]]:
    """Build a course through the API: draft, one section, ``lessons`` lessons, published."""

    async def make(
        owner: Caller,
        *,
        title: str = "Intro to Python",
        price: int = 0,
        lessons: int = 1,
        publish: bool = True,
        **fields: Any,
    ) -> dict:
        body = {"title": title, "price": price, **fields}
        response = await client.post("/api/v1/courses", json=body, headers=owner.headers)
        assert response.status_code == 201, response.text
        course = response.json()
        if lessons:
            section = await client.post(
                f"/api/v1/courses/{course['id']}/sections",
                json={"title": "Basics"},
                headers=owner.headers,
            )
            assert section.status_code == 201, section.text
            for n in range(lessons):
                lesson = await client.post(
                    f"/api/v1/courses/{course['id']}/sections/{section.json()['id']}/lessons",
                    json={
                        "title": f"Lesson {n + 1}",
                        "duration_seconds": 60,
                        "content": "<p>x</p>",
                    },
                    headers=owner.headers,
                )
                assert lesson.status_code == 201, lesson.text
        if publish:
            published = await client.post(
                f"/api/v1/courses/{course['id']}/publish", headers=owner.headers
            )
            assert published.status_code == 200, published.text
        detail = await client.get(f"/api/v1/courses/{course['id']}", headers=owner.headers)
        assert detail.status_code == 200, detail.text
        return detail.json()

    return make


@pytest.fixture
def enroll(client: httpx.AsyncClient) -> Callable[..., Awaitable[dict]]:
    async def call(student: Caller, course: dict) -> dict:
        response = await client.post(
            f"/api/v1/courses/{course['id']}/enroll", headers=student.headers
        )
        assert response.status_code in (200, 201), response.text
        return response.json()

    return call


@pytest.fixture
def outbox_events(sessions) -> Callable[..., Awaitable[list[dict]]]:
    """The envelopes written to the outbox, optionally of one type."""

    async def read(event_type: str | None = None) -> list[dict]:
        query = select(outbox.c.payload).order_by(outbox.c.id)
        if event_type:
            query = query.where(outbox.c.type == event_type)
        async with sessions() as session:
            return list((await session.execute(query)).scalars())

    return read


@pytest.fixture
def count_rows(sessions):
    async def count(table, *where) -> int:
        async with sessions() as session:
            query = select(func.count()).select_from(table)
            if where:
                query = query.where(*where)
            return (await session.execute(query)).scalar_one()

    return count


@pytest.fixture
def consumer(app, settings: Settings):
    """``consumer("payments", js=None)``: the service's consumer of a producer's events.

    Without ``js`` it cannot fetch, but its ``apply(envelope)`` does what a delivery
    does: inbox, handler and cache invalidation in the consumer's own transaction.
    """

    def make(producer: str, js: JetStreamContext | None = None) -> CoursesConsumer:
        subscription = next(s for s in SUBSCRIPTIONS if s.producer == producer)
        return CoursesConsumer(
            js,
            app.state.courses.sessions,
            subscription,
            prefix=settings.events_prefix,
            cache=app.state.courses.cache,
            fetch_timeout=0.2,
            ack_wait=5.0,
        )

    return make


@pytest.fixture
async def js(settings: Settings) -> AsyncIterator[JetStreamContext]:
    """JetStream on the test NATS; the streams of this test's prefix are removed after."""
    async with jetstream_for_tests(settings.events_prefix, "courses-tests") as context:
        yield context


@pytest.fixture
def eventually():
    """``await eventually(async_check)``: poll until truthy, fail after a timeout."""
    return poll_until
