"""Fixtures of the AI service tests: a migrated ``ai`` schema, the app in-process,
ES256 access tokens minted here, a made-up course fed through the event handlers, and
a fake OpenAI-compatible server (``ai_fake_openai.py``)."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ai_service.events import build_router
from ai_service.main import create_app
from ai_service.providers.circuit import CircuitBreaker
from ai_service.providers.openai_compatible import OpenAICompatibleProvider
from ai_service.settings import Settings
from unpuzzle_common.auth import TokenVerifier, VerificationKey
from unpuzzle_common.db import transaction
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.schemas import (
    CoursePublished,
    EnrollmentCreated,
    EventData,
    MediaProcessed,
    PublishedLesson,
)
from unpuzzle_common.testing import (
    NATS_URL,
    REDIS_URL,
    fresh_service_database,
    truncate_schema,
    unique_prefix,
)

# The fake OpenAI server is a plain module beside this file (tests run in importlib mode).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ai_fake_openai import FakeOpenAI

SERVICE_DIR = Path(__file__).resolve().parents[1]
ISSUER, AUDIENCE, KID = "unpuzzle-auth", "unpuzzle-api", "ai-test-key"

PHOTOSYNTHESIS = (
    "<p>Photosynthesis is the process by which plants turn light energy into chemical "
    "energy.</p><p>It takes place in the chloroplasts, which contain the green pigment "
    "chlorophyll. Carbon dioxide and water are converted into glucose and oxygen.</p>"
)
RESPIRATION = (
    "Cellular respiration releases the energy stored in glucose. It happens in the "
    "mitochondria of the cell. Oxygen is used and carbon dioxide is released as waste. "
    "The released energy is stored in molecules of ATP."
)
TRANSPORT = (
    "Xylem vessels carry water and dissolved minerals from the roots up to the leaves. "
    "Phloem tissue moves sugars from the leaves to the rest of the plant. Transpiration "
    "is the loss of water vapour through the stomata."
)
TRANSPORT_TRANSCRIPT = """WEBVTT

1
00:00:00.000 --> 00:00:05.000
Welcome to this lesson on how water moves through a plant.

2
00:01:05.000 --> 00:01:12.500
Root hair cells absorb water from the soil by osmosis.

3
00:01:12.500 --> 00:01:20.000
Their long thin shape gives them a large surface area.
"""


@dataclass
class Course:
    """The made-up course of the tests, as the events described it."""

    course_id: uuid.UUID
    instructor_id: uuid.UUID
    student_id: uuid.UUID
    photosynthesis: uuid.UUID
    respiration: uuid.UUID
    transport: uuid.UUID
    transport_media: uuid.UUID


@pytest.fixture(scope="session")
def ai_database_url() -> str:
    return fresh_service_database("ai", SERVICE_DIR)


@pytest.fixture(scope="session")
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def settings(ai_database_url: str) -> Settings:
    return Settings(
        database_url=ai_database_url,
        redis_url=REDIS_URL,
        nats_url=NATS_URL,
        events_prefix=unique_prefix(),
        redis_prefix=f"ai-test-{uuid.uuid4().hex[:8]}",
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        free_daily_limit=50,
    )


@pytest.fixture
async def app(settings: Settings, signing_key) -> AsyncIterator[object]:
    truncate_schema("ai")
    application = create_app(settings)
    public = VerificationKey(kid=KID, alg="ES256", key=signing_key.public_key())

    async def lookup(kid: str) -> VerificationKey | None:
        return public if kid == KID else None

    async with application.router.lifespan_context(application):
        application.state.token_verifier = TokenVerifier(lookup, issuer=ISSUER, audience=AUDIENCE)
        yield application
        await application.state.tutor.background.drain(10)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ai.test") as c:
        yield c


@pytest.fixture
def ctx(app):
    """The running app's TutorContext (settings, sessions, limiter, answering...)."""
    return app.state.tutor


@pytest.fixture
def auth(signing_key):
    """``auth(user_id, *roles)`` → headers with a freshly minted ES256 access token."""

    def headers(user_id: uuid.UUID, *roles: str) -> dict[str, str]:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "email": f"{user_id.hex[:8]}@example.com",
            "roles": list(roles or ("student",)),
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, signing_key, algorithm="ES256", headers={"kid": KID})
        return {"Authorization": f"Bearer {token}"}

    return headers


@pytest.fixture
def apply_event(ctx):
    """Apply an event through the consumers' handlers, as the worker would."""
    router = build_router(ctx.settings)

    async def apply(data: EventData, *, source: str = "test", at: datetime | None = None) -> None:
        envelope = Envelope.new(data, source=source)
        if at is not None:
            envelope = envelope.model_copy(update={"time": at})
        async with transaction(ctx.sessions) as session:
            await router(session, envelope)

    return apply


@pytest.fixture
async def course(apply_event) -> Course:
    """A published course of three lessons (one with a video transcript) and an
    enrolled student."""
    made = Course(*(uuid.uuid4() for _ in range(7)))
    await apply_event(
        CoursePublished(
            course_id=made.course_id,
            instructor_id=made.instructor_id,
            price=0,
            currency="usd",
            title="Plant biology",
            lessons=[
                PublishedLesson(
                    lesson_id=made.photosynthesis,
                    title="Photosynthesis",
                    position=0,
                    content=PHOTOSYNTHESIS,
                ),
                PublishedLesson(
                    lesson_id=made.respiration,
                    title="Cellular respiration",
                    position=1,
                    content=RESPIRATION,
                ),
                PublishedLesson(
                    lesson_id=made.transport,
                    title="Transport in plants",
                    position=2,
                    content=TRANSPORT,
                    media_id=made.transport_media,
                ),
            ],
        )
    )
    await apply_event(
        MediaProcessed(
            media_id=made.transport_media,
            owner_id=made.instructor_id,
            content_type="video/mp4",
            duration=80.0,
            transcript=TRANSPORT_TRANSCRIPT,
        )
    )
    await apply_event(
        EnrollmentCreated(
            enrollment_id=uuid.uuid4(),
            user_id=made.student_id,
            course_id=made.course_id,
            source="free",
        )
    )
    return made


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def openai_provider(fake_openai):
    """``openai_provider(**overrides)`` → a provider talking to the fake server."""
    made: list[OpenAICompatibleProvider] = []

    def make(**overrides) -> OpenAICompatibleProvider:
        options = {
            "api_key": "test-key",
            "base_url": fake_openai.base_url,
            "model": "fake-model",
            "timeout": 5.0,
            "max_retries": 2,
            "retry_backoff": 0.01,
            "retry_max_delay": 0.05,
            "json_mode": True,
            "breaker": CircuitBreaker(failure_threshold=3, reset_seconds=30),
        }
        options.update(overrides)
        provider = OpenAICompatibleProvider(**options)
        made.append(provider)
        return provider

    return make


def now() -> datetime:
    return datetime.now(UTC)
