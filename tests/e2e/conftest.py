"""A whole stack for the journeys: ``python -m devstack up`` on a free port.

The stack gets its own database (``unpuzzle_e2e_<random>``, dropped at the end), its
own event prefix (its streams are deleted at the end), its own Redis database and dev
dir, and runs its services on free ports: it disturbs neither a developer's
``make up`` nor another test run on the same machine. Everything is reached through
the gateway URL, as a client would.

The journeys share a few helpers: ``journeys`` (an :class:`Api` that also makes users,
courses and enrollments), ``eventually`` (assert with a deadline, for effects that travel
by events), ``bus`` (reads the stack's JetStream streams and checks each event against
its model and its committed JSON Schema under tests/contract/events) and ``problem``.

Environment (same defaults as the other suites, see unpuzzle_common.testing):
``UNPUZZLE_TEST_ADMIN_URL``, ``UNPUZZLE_TEST_NATS_URL``, ``UNPUZZLE_E2E_REDIS_URL``
(default redis://127.0.0.1:6379/14), ``UNPUZZLE_E2E_DATABASE`` (a fixed database name,
kept after the run for inspection).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats
import psycopg
import pytest
from jsonschema import Draft202012Validator
from nats.js.errors import NotFoundError
from psycopg import sql

from unpuzzle_common.events import EVENT_TYPES, PRODUCED_DOMAINS, Envelope, parse_data, stream_name

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
PASSWORD = "correct horse battery staple"
T = TypeVar("T")

ADMIN_URL = os.environ.get(
    "UNPUZZLE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
NATS_URL = os.environ.get("UNPUZZLE_TEST_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("UNPUZZLE_E2E_REDIS_URL", "redis://127.0.0.1:6379/14")


@dataclass(frozen=True)
class Stack:
    url: str
    prefix: str
    nats_url: str
    admin_email: str
    admin_password: str
    dev_dir: Path
    database: str
    #: The environment devstack runs with (for further ``python -m devstack`` commands).
    env: dict[str, str]

    def devstack(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run another devstack command against this stack's database and dev dir."""
        command = [sys.executable, "-m", "devstack", *args]
        command += ["--database", self.database, "--dev-dir", str(self.dev_dir)]
        command += ["--prefix", self.prefix]
        return subprocess.run(
            command, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _output(path: Path) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-6000:]


def _ready(url: str) -> bool:
    try:
        with httpx.Client(base_url=url, timeout=2) as client:
            return (
                client.get("/healthz").status_code == 200
                and client.get("/api/v1/auth/.well-known/jwks.json").status_code == 200
            )
    except httpx.HTTPError:
        return False


def _drop_database(database: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


async def _delete_streams(prefix: str) -> None:
    nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            if info.config.name.lower().startswith(prefix.lower() + "_"):
                await js.delete_stream(info.config.name)
    finally:
        await nc.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    dev_dir = tmp_path_factory.mktemp("devstack")
    port = _free_port()
    run_id = uuid.uuid4().hex[:10]
    prefix = f"e2e{run_id}"
    database = os.environ.get("UNPUZZLE_E2E_DATABASE") or f"unpuzzle_e2e_{run_id}"
    admin_email = f"admin-{prefix}@example.com"
    admin_password = secrets.token_urlsafe(16)
    # A developer's real transcription key must not reach the stack: the journeys
    # expect the dev stack's fake OpenAI server (devstack/fake_openai.py).
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MEDIA_OPENAI_")}
    env = {
        **inherited,
        "ADMIN_EMAIL": admin_email,
        "ADMIN_PASSWORD": admin_password,
        "UNPUZZLE_ADMIN_DATABASE_URL": ADMIN_URL,
        "UNPUZZLE_NATS_URL": NATS_URL,
        "UNPUZZLE_REDIS_URL": REDIS_URL,
        # Cheap password hashing keeps the journeys fast (bench/ measures the real cost).
        "AUTH_ARGON2_TIME_COST": "1",
        "AUTH_ARGON2_MEMORY_COST": "8192",
        "AUTH_ARGON2_PARALLELISM": "1",
        # The suite signs up a few dozen accounts from one address within a minute
        # (gateway/README: automated suites raise the strict limit).
        "GATEWAY_RATE_LIMIT_STRICT": "600r/m",
        "GATEWAY_RATE_LIMIT_STRICT_BURST": "30",
        # The journeys together send 30-70 requests a second from one address for
        # stretches of several seconds; the dev default (20r/s, burst 100) is for one
        # client at a human pace. No journey tests the gateway's per-address or per-user
        # limits (gateway/tests does); the fuzz run sends thousands of requests.
        "GATEWAY_RATE_LIMIT_ADDRESS": "1000r/s",
        "GATEWAY_RATE_LIMIT_ADDRESS_BURST": "1000",
        "GATEWAY_RATE_LIMIT_USER": "1000r/s",
        "GATEWAY_RATE_LIMIT_USER_BURST": "1000",
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "devstack", "up", "--port", str(port)]
    command += ["--database", database, "--prefix", prefix, "--dev-dir", str(dev_dir)]
    command += ["--free-ports", "--fresh", "--keys-every", "1"]
    out_path = dev_dir / "devstack.out"
    with out_path.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _ready(url):
            if process.poll() is not None:
                pytest.fail(f"devstack exited with {process.returncode}:\n{_output(out_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"stack not ready after {START_TIMEOUT:.0f}s:\n{_output(out_path)}")
            time.sleep(0.2)
        yield Stack(url, prefix, NATS_URL, admin_email, admin_password, dev_dir, database, env)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            code = process.wait()
        asyncio.run(_delete_streams(prefix))
        if not os.environ.get("UNPUZZLE_E2E_DATABASE"):
            _drop_database(database)
    assert code == 0, f"devstack did not stop cleanly ({code}):\n{_output(out_path)}"


class Api:
    """A client of the gateway URL with the few helpers the journeys share."""

    password = PASSWORD

    def __init__(self, client: httpx.Client) -> None:
        self.http = client

    @staticmethod
    def bearer(access_token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {access_token}"}

    @staticmethod
    def new_email(label: str = "user") -> str:
        return f"{label}-{uuid.uuid4().hex[:12]}@example.com"

    def signup(self, email: str | None = None, **extra: str) -> dict:
        """Sign a new account up; returns the 201 body (user and tokens)."""
        body = {
            "email": email or self.new_email(),
            "password": PASSWORD,
            "full_name": "Ada Lovelace",
            **extra,
        }
        response = self.http.post("/api/v1/auth/signup", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def signin(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return self.http.post("/api/v1/auth/signin", json={"email": email, "password": password})

    def refresh(self, refresh_token: str) -> httpx.Response:
        return self.http.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})

    def sessions(self, access_token: str) -> list[dict]:
        response = self.http.get("/api/v1/auth/sessions", headers=self.bearer(access_token))
        assert response.status_code == 200, response.text
        return response.json()["items"]


@pytest.fixture
def api(stack: Stack) -> Iterator[Api]:
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        yield Api(client)


def assert_problem(response: httpx.Response, status: int) -> dict:
    """An RFC 9457 problem document with ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    return body


@pytest.fixture
def problem():
    return assert_problem


# -- Helpers of the course, media and AI journeys ------------------------------------

#: Committed JSON Schema of each event type's ``data`` (tests/contract/regenerate_events.py).
EVENT_SCHEMAS = REPO / "tests" / "contract" / "events"


@dataclass(frozen=True)
class User:
    """A signed-up (or signed-in) account as the journeys use it."""

    id: str
    email: str
    access_token: str
    roles: tuple[str, ...]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def eventually(check: Callable[[], T], *, timeout: float, interval: float = 0.2) -> T:
    """Run ``check`` until it stops raising AssertionError; its result.

    Effects that cross services travel by events, so the journeys assert them with
    a deadline; the last AssertionError is raised when ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(interval)


class Journeys(Api):
    """:class:`Api` plus the accounts, courses and enrollments the journeys build."""

    def __init__(self, client: httpx.Client, stack: Stack) -> None:
        super().__init__(client)
        self.stack = stack

    def user(self, role: str = "student", label: str | None = None) -> User:
        body = self.signup(self.new_email(label or role), role=role)
        user = body["user"]
        return User(user["id"], user["email"], body["access_token"], tuple(user["roles"]))

    def admin(self) -> User:
        response = self.signin(self.stack.admin_email, self.stack.admin_password)
        assert response.status_code == 200, response.text
        body = response.json()
        user = body["user"]
        return User(user["id"], user["email"], body["access_token"], tuple(user["roles"]))

    def create_course(
        self,
        owner: User,
        *,
        title: str,
        lessons: Sequence[dict[str, Any]] = ({"title": "Lesson one", "content": "<p>One.</p>"},),
        price: int = 0,
        currency: str = "usd",
        description: str = "",
        category_id: str | None = None,
        publish: bool = True,
    ) -> dict:
        """A course with one section holding ``lessons``; its detail as the owner sees it."""
        body: dict[str, Any] = {
            "title": title,
            "description": description,
            "price": price,
            "currency": currency,
        }
        if category_id is not None:
            body["category_id"] = category_id
        created = self.http.post("/api/v1/courses", json=body, headers=owner.headers)
        assert created.status_code == 201, created.text
        course_id = created.json()["id"]
        section = self.http.post(
            f"/api/v1/courses/{course_id}/sections",
            json={"title": "Part one"},
            headers=owner.headers,
        )
        assert section.status_code == 201, section.text
        for lesson in lessons:
            response = self.http.post(
                f"/api/v1/courses/{course_id}/sections/{section.json()['id']}/lessons",
                json=lesson,
                headers=owner.headers,
            )
            assert response.status_code == 201, response.text
        if publish:
            published = self.http.post(
                f"/api/v1/courses/{course_id}/publish", headers=owner.headers
            )
            assert published.status_code == 200, published.text
        detail = self.http.get(f"/api/v1/courses/{course_id}", headers=owner.headers)
        assert detail.status_code == 200, detail.text
        return detail.json()

    def enroll(self, student: User, course_id: str) -> httpx.Response:
        return self.http.post(f"/api/v1/courses/{course_id}/enroll", headers=student.headers)

    def upload_in_chunks(
        self, owner: User, path: Path, content_type: str = "video/mp4"
    ) -> tuple[dict, dict]:
        """A resumable upload as a client sends it: open, every chunk (with its
        ``Content-MD5``), complete. Returns the opened upload and the completed media."""
        data = path.read_bytes()
        opened = self.http.post(
            "/api/v1/media/uploads",
            json={"filename": path.name, "file_size": len(data), "content_type": content_type},
            headers=owner.headers,
        )
        assert opened.status_code == 201, opened.text
        upload = opened.json()
        size, upload_id = upload["chunk_size"], upload["upload_id"]
        for number, start in enumerate(range(0, len(data), size)):
            chunk = data[start : start + size]
            md5 = base64.b64encode(hashlib.md5(chunk).digest()).decode()
            sent = self.http.put(
                f"/api/v1/media/uploads/{upload_id}/chunks/{number}",
                content=chunk,
                headers={**owner.headers, "Content-MD5": md5},
            )
            assert sent.status_code == 200, sent.text
            assert sent.json()["size"] == len(chunk), sent.text
        completed = self.http.post(
            f"/api/v1/media/uploads/{upload_id}/complete", headers=owner.headers
        )
        assert completed.status_code == 201, completed.text
        return upload, completed.json()

    def processed_media(self, owner: User, media_id: str, *, timeout: float) -> dict:
        """The media file once the worker has processed it (``ready``; never ``failed``)."""

        def ready() -> dict:
            response = self.http.get(f"/api/v1/media/{media_id}", headers=owner.headers)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["processing_status"] != "failed", body
            assert body["processing_status"] == "ready", body["processing_status"]
            return body

        return eventually(ready, timeout=timeout, interval=0.3)

    def tutor_session(self, student: User, course_id: str, *, timeout: float) -> str:
        """A chat session on the course, once ai has learnt the course and the enrollment."""

        def session() -> str:
            response = self.http.post(
                "/api/v1/ai/sessions",
                json={"course_id": course_id, "session_type": "chat"},
                headers=student.headers,
            )
            assert response.status_code == 201, response.text
            return response.json()["id"]

        return eventually(session, timeout=timeout)

    def ask_streamed(self, user: User, session_id: str, question: str) -> list[tuple[str, dict]]:
        """Ask the tutor with ``Accept: text/event-stream``; the (event, data) pairs."""
        with self.http.stream(
            "POST",
            f"/api/v1/ai/sessions/{session_id}/messages",
            json={"content": question},
            headers={**user.headers, "Accept": "text/event-stream"},
        ) as response:
            assert response.status_code == 200, response.read().decode()
            assert response.headers["content-type"].startswith("text/event-stream")
            assert "content-length" not in response.headers  # streamed, not buffered
            return list(server_sent_events(response))


def server_sent_events(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    """(event, data) pairs of a ``text/event-stream``, parsed as the lines arrive."""
    event, data = None, []
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())
        elif line == "" and event is not None:
            yield event, json.loads("\n".join(data))
            event, data = None, []


@pytest.fixture
def journeys(stack: Stack) -> Iterator[Journeys]:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield Journeys(client, stack)


@pytest.fixture(name="eventually")
def eventually_fixture() -> Callable[..., Any]:
    return eventually


def lesson_ids(course: dict) -> list[str]:
    """The ids of a course detail's lessons, in course order."""
    return [lesson["id"] for section in course["sections"] for lesson in section["lessons"]]


@pytest.fixture(name="lesson_ids")
def lesson_ids_fixture() -> Callable[[dict], list[str]]:
    return lesson_ids


@dataclass(frozen=True)
class Event:
    """One message of a producer's JetStream stream."""

    envelope: dict[str, Any]
    headers: dict[str, str]

    @property
    def type(self) -> str:
        return self.envelope["type"]

    @property
    def data(self) -> dict[str, Any]:
        return self.envelope["data"]


async def _read_stream(nats_url: str, stream: str) -> list[Event]:
    nc = await nats.connect(nats_url, connect_timeout=2, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            return []
        events = []
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, sequence)
            except NotFoundError:  # deleted or aged out
                continue
            events.append(Event(json.loads(msg.data), dict(msg.headers or {})))
        return events
    finally:
        await nc.close()


def _producer_of(event_type: str) -> str:
    domain = event_type.split(".", 1)[0]
    (service,) = [name for name, domains in PRODUCED_DOMAINS.items() if domain in domains]
    return service


def assert_event_contract(event: Event) -> None:
    """The event as it travelled fits the envelope, its type's model and its JSON Schema."""
    envelope = Envelope.model_validate(event.envelope)  # raises on a malformed envelope
    assert event.headers.get("Nats-Msg-Id") == str(envelope.id), event
    assert envelope.type in EVENT_TYPES, f"unknown event type {envelope.type}"
    assert envelope.source == _producer_of(envelope.type), event
    data = parse_data(envelope.type, envelope.data)
    assert envelope.subject == data.default_subject(), event
    schema_path = EVENT_SCHEMAS / f"{envelope.type}.json"
    if schema_path.exists():  # tests/contract checks that every type has one
        schema = json.loads(schema_path.read_text())
        errors = sorted(
            Draft202012Validator(
                schema, format_checker=Draft202012Validator.FORMAT_CHECKER
            ).iter_errors(event.data),
            key=lambda e: list(e.path),
        )
        assert not errors, f"{envelope.type} does not fit {schema_path.name}: {errors[0].message}"


class Bus:
    """The stack's event streams, read from the start (each journey filters its own)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def events(self, service: str) -> list[Event]:
        stream = stream_name(self.stack.prefix, service)
        return asyncio.run(_read_stream(self.stack.nats_url, stream))

    def wait_for(
        self,
        service: str,
        match: Callable[[Event], bool],
        *,
        count: int = 1,
        timeout: float = 5.0,
    ) -> list[Event]:
        """At least ``count`` events of ``service`` matching ``match``, each contract-checked."""

        def found() -> list[Event]:
            events = [event for event in self.events(service) if match(event)]
            assert len(events) >= count, f"{len(events)} of {count} events: {events}"
            return events

        events = eventually(found, timeout=timeout, interval=0.25)
        for event in events:
            assert_event_contract(event)
        return events


@pytest.fixture
def bus(stack: Stack) -> Bus:
    return Bus(stack)


# -- Helpers of the purchase, analytics and subscription journeys --------------------

#: The dev Stripe key the stack's payments service uses (payments_service.settings).
DEV_STRIPE_API_KEY = "sk_test_unpuzzle_dev_only"
WEBHOOK_PATH = "/api/v1/payments/webhooks/stripe"


def stripe_signature(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """``Stripe-Signature`` as Stripe computes it: HMAC-SHA256 of ``<t>.<payload>``."""
    signed_at = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{signed_at}.".encode() + payload, hashlib.sha256)
    return f"t={signed_at},v1={mac.hexdigest()}"


def stripe_event(event_type: str, obj: dict[str, Any], *, created: int | None = None) -> dict:
    """A Stripe ``event`` object wrapping ``obj``, as a webhook body holds it."""
    return {
        "id": f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": int(time.time()) if created is None else created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj},
    }


class Stripe:
    """Stripe as the journeys play it: the stack's fake Stripe and signed webhooks.

    A buyer pays at Stripe (Stripe.js confirms the PaymentIntent; here :meth:`pay`
    confirms it at the stack's fake Stripe sidecar with a test card), and Stripe then
    tells the platform through a signed webhook posted to the gateway
    (:meth:`deliver`), signed with the stack's webhook secret.
    """

    def __init__(self, stack: Stack, http: httpx.Client) -> None:
        self.stack = stack
        self.http = http

    @functools.cached_property
    def webhook_secret(self) -> str:
        # devstack: STRIPE_WEBHOOK_SECRET from the environment wins over the one it
        # generated into the dev dir's secrets.env (NAME=value lines).
        if self.stack.env.get("STRIPE_WEBHOOK_SECRET"):
            return self.stack.env["STRIPE_WEBHOOK_SECRET"]
        lines = (self.stack.dev_dir / "secrets.env").read_text().splitlines()
        values = dict(line.split("=", 1) for line in lines if "=" in line and line[0] != "#")
        return values["STRIPE_WEBHOOK_SECRET"].strip()

    @functools.cached_property
    def api_url(self) -> str:
        """The fake Stripe sidecar's URL (on a free port: devstack's summary names it)."""
        summary = (self.stack.dev_dir / "devstack.out").read_text(errors="replace")
        found = re.search(r"payments-stripe :(\d+)", summary)
        assert found, "devstack's summary does not name the payments-stripe port"
        return f"http://127.0.0.1:{found.group(1)}"

    def _api(self, method: str, path: str, status: int = 200, **data: str) -> dict:
        api_key = self.stack.env.get("PAYMENTS_STRIPE_API_KEY") or DEV_STRIPE_API_KEY
        response = httpx.request(
            method,
            f"{self.api_url}{path}",
            data=data or None,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=10,
        )
        assert response.status_code == status, response.text
        return response.json()

    def pay(self, provider_payment_id: str, card: str = "pm_card_visa") -> dict:
        """Confirm the PaymentIntent at Stripe with a test card; the intent, succeeded."""
        path = f"/v1/payment_intents/{provider_payment_id}/confirm"
        return self._api("POST", path, payment_method=card)

    def decline(self, provider_payment_id: str) -> dict:
        """Try to pay with a card Stripe declines; the intent, awaiting another card."""
        self._api(
            "POST",
            f"/v1/payment_intents/{provider_payment_id}/confirm",
            402,
            payment_method="pm_card_chargeDeclined",
        )
        return self._api("GET", f"/v1/payment_intents/{provider_payment_id}")

    def charge(self, charge_id: str) -> dict:
        return self._api("GET", f"/v1/charges/{charge_id}")

    def end_subscription(self, provider_subscription_id: str) -> dict:
        """Stripe ends the subscription (as at the end of a period asked to cancel)."""
        return self._api("DELETE", f"/v1/subscriptions/{provider_subscription_id}")

    @staticmethod
    def event(event_type: str, obj: dict[str, Any], *, created: int | None = None) -> dict:
        return stripe_event(event_type, obj, created=created)

    def deliver(
        self,
        event: dict,
        *,
        secret: str | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> httpx.Response:
        """POST the event to the gateway's webhook URL, signed as Stripe signs it."""
        body = json.dumps(event, separators=(",", ":")).encode()
        if signature is None:
            signature = stripe_signature(body, secret or self.webhook_secret, timestamp=timestamp)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature,
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        return self.http.post(WEBHOOK_PATH, content=body, headers=headers)

    def open_intent(
        self, buyer: User, course_id: str, *, timeout: float = 2.0
    ) -> tuple[httpx.Response, str]:
        """``POST /payments/intents`` once payments knows the course (``course.published.v1``
        arrives within 2 s; 404 before). Each try has its own ``Idempotency-Key``, since a
        404 is replayed for its key; returns the 201 and the key that got it."""

        def opened() -> tuple[httpx.Response, str]:
            key = f"buy-{uuid.uuid4().hex}"
            response = self.http.post(
                "/api/v1/payments/intents",
                json={"course_id": course_id},
                headers={**buyer.headers, "Idempotency-Key": key},
            )
            assert response.status_code == 201, response.text
            return response, key

        return eventually(opened, timeout=timeout)

    def buy(self, buyer: User, course_id: str) -> tuple[dict, dict]:
        """A whole purchase: intent, payment at Stripe, signed ``payment_intent.succeeded``.

        Returns the intent answer and the event delivered."""
        intent = self.open_intent(buyer, course_id)[0].json()
        paid = self.pay(intent["provider_payment_id"])
        assert paid["status"] == "succeeded", paid
        event = self.event("payment_intent.succeeded", paid)
        delivered = self.deliver(event)
        assert delivered.status_code == 200, delivered.text
        assert delivered.json()["duplicate"] is False, delivered.text
        return intent, event


@pytest.fixture
def stripe(stack: Stack, journeys: Journeys) -> Stripe:
    return Stripe(stack, journeys.http)
