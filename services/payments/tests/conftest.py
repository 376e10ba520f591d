"""Fixtures of the payments service tests: a migrated ``payments`` schema, the app
in-process, the fake Stripe server on a real port (the official SDK makes real HTTP
calls to it), and webhooks signed exactly as Stripe signs them.

Access tokens are minted with a key made for the test session; the app verifies them
with the real :class:`TokenVerifier`, whose key lookup knows only that key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext
from pydantic import SecretStr
from sqlalchemy import func, select, update

from payments_service.dev_webhooks import event_document, signature_header
from payments_service.events import SUBSCRIPTIONS, PaymentsConsumer
from payments_service.fake_stripe import FakeStripe
from payments_service.main import create_app
from payments_service.models import outbox, payments
from payments_service.settings import Settings
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.schemas import CoursePublished, CourseUnpublished, EnrollmentCreated
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
KID = "payments-test-key"
WEBHOOK_SECRET = "whsec_test_" + uuid.uuid4().hex
WEBHOOK_PATH = "/api/v1/payments/webhooks/stripe"


@pytest.fixture(scope="session")
def payments_database_url() -> str:
    return fresh_service_database("payments", SERVICE_DIR)


@pytest.fixture(scope="session")
def fake_stripe() -> Iterator[FakeStripe]:
    server = FakeStripe()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def settings(payments_database_url: str, fake_stripe: FakeStripe) -> Settings:
    return Settings(
        database_url=payments_database_url,
        redis_url=REDIS_URL,
        nats_url=NATS_URL,
        events_prefix=unique_prefix(),
        db_pool_size=5,
        stripe_api_base=fake_stripe.url,
        stripe_api_key=SecretStr("sk_test_payments_tests"),
        stripe_webhook_secret=SecretStr(WEBHOOK_SECRET),
        stripe_max_network_retries=0,
        stripe_timeout=5.0,
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
async def app(running_app, fake_stripe: FakeStripe) -> Any:
    """The app over an empty schema and an empty fake Stripe."""
    truncate_schema("payments")
    fake_stripe.state.reset()
    return running_app


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://payments.test") as c:
        yield c


@pytest.fixture
def sessions(app):
    return app.state.payments.sessions


@pytest.fixture
def make_user(mint: TokenMint) -> Callable[..., Caller]:
    return mint.caller


@pytest.fixture
def consumer(app, settings: Settings) -> Callable[..., PaymentsConsumer]:
    """``consumer("payments-courses", js=None)``: one of the service's consumers.

    Without ``js`` it cannot fetch, but its ``apply(envelope)`` does what a delivery
    does: inbox and handler in one transaction.
    """

    def make(name: str, js: JetStreamContext | None = None) -> PaymentsConsumer:
        subscription = next(s for s in SUBSCRIPTIONS if s.name == name)
        return PaymentsConsumer(
            js,  # type: ignore[arg-type]
            app.state.payments.sessions,
            subscription,
            prefix=settings.events_prefix,
            fetch_timeout=0.2,
            ack_wait=5.0,
        )

    return make


@pytest.fixture
def deliver(consumer) -> Callable[[Envelope], Awaitable[bool]]:
    """Apply an event from the courses service as the right consumer would."""

    async def apply(envelope: Envelope) -> bool:
        name = "payments-courses" if envelope.type.startswith("course.") else "payments-enrollments"
        return await consumer(name).apply(envelope)

    return apply


@pytest.fixture
def publish_course(deliver) -> Callable[..., Awaitable[uuid.UUID]]:
    """A course the read model knows, as if courses' course.published.v1 had arrived."""

    async def publish(
        *,
        price: int = 4900,
        currency: str = "usd",
        instructor_id: uuid.UUID | None = None,
        course_id: uuid.UUID | None = None,
        published: bool = True,
    ) -> uuid.UUID:
        course_id = course_id or uuid.uuid4()
        model = CoursePublished if published else CourseUnpublished
        await deliver(
            Envelope.new(
                model(
                    course_id=course_id,
                    instructor_id=instructor_id or uuid.uuid4(),
                    price=price,
                    currency=currency,
                ),
                source="courses",
            )
        )
        return course_id

    return publish


@pytest.fixture
def enrolled(deliver) -> Callable[..., Awaitable[None]]:
    """Announce an enrollment, as courses' enrollment.created.v1 would."""

    async def enroll(user: Caller, course_id: uuid.UUID, source: str = "free") -> None:
        await deliver(
            Envelope.new(
                EnrollmentCreated(
                    enrollment_id=uuid.uuid4(), user_id=user.id, course_id=course_id, source=source
                ),
                source="courses",
            )
        )

    return enroll


@pytest.fixture
def buy(client) -> Callable[..., Awaitable[dict]]:
    """``await buy(student, course_id)``: a payment intent through the API (201)."""

    async def start(user: Caller, course_id: uuid.UUID, **headers: str) -> dict:
        response = await client.post(
            "/api/v1/payments/intents",
            json={"course_id": str(course_id)},
            headers={**user.headers, **headers},
        )
        assert response.status_code in (200, 201), response.text
        return response.json()

    return start


def signed(
    event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    return body, {
        "Content-Type": "application/json",
        "Stripe-Signature": signature_header(body, secret, timestamp=timestamp),
    }


@pytest.fixture
def sign() -> Callable[..., tuple[bytes, dict[str, str]]]:
    """``body, headers = sign(event, secret=..., timestamp=...)``: a Stripe-style delivery."""
    return signed


@pytest.fixture
def send_event(client) -> Callable[..., Awaitable[httpx.Response]]:
    """``await send_event(type, obj, event_id=..., created=...)``: a signed delivery."""

    async def send(
        event_type: str,
        obj: dict[str, Any],
        *,
        event_id: str | None = None,
        created: int | None = None,
    ) -> httpx.Response:
        body, headers = signed(event_document(event_type, obj, event_id=event_id, created=created))
        return await client.post(WEBHOOK_PATH, content=body, headers=headers)

    return send


@pytest.fixture
def stripe_intent(fake_stripe: FakeStripe) -> Callable[..., dict[str, Any]]:
    """The PaymentIntent of a payment as Stripe holds it, with the given status (a copy)."""

    def intent(payment: dict, status: str = "succeeded", **changes: Any) -> dict[str, Any]:
        stored = dict(fake_stripe.state.objects[payment["provider_payment_id"]])
        stored.update(status=status, **changes)
        if status == "succeeded":
            stored["amount_received"] = stored["amount"]
        return stored

    return intent


def _charge_refunded(intent: dict[str, Any], *, amount_refunded: int | None = None) -> dict:
    """A ``charge`` object of a (fully, by default) refunded charge of ``intent``."""
    refunded = intent["amount"] if amount_refunded is None else amount_refunded
    return {
        "id": f"ch_{uuid.uuid4().hex[:24]}",
        "object": "charge",
        "amount": intent["amount"],
        "amount_refunded": refunded,
        "currency": intent["currency"],
        "payment_intent": intent["id"],
        "refunded": refunded >= intent["amount"],
        "refunds": {"object": "list", "data": [{"id": f"re_{uuid.uuid4().hex[:24]}"}]},
    }


@pytest.fixture
def charge_refunded() -> Callable[..., dict]:
    """``charge_refunded(intent, amount_refunded=None)``: the object of a charge.refunded event."""
    return _charge_refunded


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
def payment_row(sessions) -> Callable[[str | uuid.UUID], Awaitable[Any]]:
    async def read(payment_id: str | uuid.UUID) -> Any:
        async with sessions() as session:
            query = select(payments).where(payments.c.id == uuid.UUID(str(payment_id)))
            return (await session.execute(query)).one()

    return read


@pytest.fixture
def backdate(sessions) -> Callable[..., Awaitable[None]]:
    """Move a payment's success into the past (the refund window's clock)."""

    async def move(payment_id: str | uuid.UUID, *, days: float) -> None:
        async with sessions() as session, session.begin():
            await session.execute(
                update(payments)
                .where(payments.c.id == uuid.UUID(str(payment_id)))
                .values(succeeded_at=func.now() - timedelta(days=days))
            )

    return move


@pytest.fixture
def paid(app, buy, send_event) -> Callable[..., Awaitable[dict]]:
    """``await paid(student, course_id)``: a payment confirmed at the fake Stripe with a
    test card and reported succeeded by its signed webhook."""

    async def pay(user: Caller, course_id: uuid.UUID) -> dict:
        payment = await buy(user, course_id)
        gateway = app.state.payments.gateway
        intent = await gateway.confirm_payment_intent(payment["provider_payment_id"])
        response = await send_event("payment_intent.succeeded", intent)
        assert response.status_code == 200, response.text
        return payment

    return pay


@pytest.fixture
async def js(settings: Settings) -> AsyncIterator[JetStreamContext]:
    """JetStream on the test NATS; the streams of this test's prefix are removed after."""
    async with jetstream_for_tests(settings.events_prefix, "payments-tests") as context:
        yield context


@pytest.fixture
def eventually():
    """``await eventually(async_check)``: poll until truthy, fail after a timeout."""
    return poll_until
