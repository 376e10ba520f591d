"""The central saga across two services, in-process: payments and courses apps and their
workers on one NATS, each service in its own schema of a database of its own.

An instructor publishes a paid course (courses) → payments learns its price from
course.published.v1 → a student opens an intent (payments, Stripe via the fake) → the
payment is confirmed and Stripe's signed webhook arrives → payment.succeeded.v1 →
courses grants the enrollment, visible in GET /api/v1/enrollments within 2 s → the
student refunds → payment.refunded.v1 → the enrollment is gone within 2 s.

It lives with the payments tests because it needs the fake Stripe; it imports the
courses service (skipped when that is not installed). The database is a separate one
(``unpuzzle_test_saga``) so the courses suite's own schema is never touched.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

courses_service = pytest.importorskip("courses_service")

from courses_service.main import create_app as create_courses_app  # noqa: E402
from courses_service.settings import Settings as CoursesSettings  # noqa: E402
from courses_service.worker import run_worker as run_courses_worker  # noqa: E402
from payments_service.dev_webhooks import confirm_payment  # noqa: E402
from payments_service.main import create_app as create_payments_app  # noqa: E402
from payments_service.worker import run_worker as run_payments_worker  # noqa: E402
from unpuzzle_common.db import provision_service  # noqa: E402
from unpuzzle_common.events import connect, jetstream_context  # noqa: E402
from unpuzzle_common.migrations import upgrade_to_head  # noqa: E402
from unpuzzle_common.testing import (  # noqa: E402
    ADMIN_URL,
    NATS_URL,
    TEST_PASSWORD,
    delete_streams_with_prefix,
    drop_schema,
    unique_prefix,
)

SAGA_DATABASE = "unpuzzle_test_saga"
PAYMENTS_DIR = Path(__file__).resolve().parents[1]
COURSES_DIR = Path(courses_service.__file__).resolve().parents[1]
#: DESIGN.md §3: effects that cross services through events show within 2 s.
CROSS_SERVICE_DEADLINE = 2.0
#: How long the first event may take while the workers are still starting (a busy CI box).
WORKERS_START_ALLOWANCE = 15.0


def _fresh(service: str, service_dir: Path) -> str:
    drop_schema(service, SAGA_DATABASE)
    url = provision_service(
        ADMIN_URL, service=service, password=TEST_PASSWORD, database=SAGA_DATABASE
    )
    upgrade_to_head(service_dir, url)
    return url


async def _within(seconds: float, check) -> float:
    """Poll ``check`` until truthy; the seconds it took (fails after ``seconds``)."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not visible within {seconds}s")
        await asyncio.sleep(0.02)


@pytest.fixture
async def suite(settings, mint, fake_stripe) -> AsyncIterator[dict[str, Any]]:
    prefix = unique_prefix()
    payments_settings = settings.model_copy(
        update={"database_url": _fresh("payments", PAYMENTS_DIR), "events_prefix": prefix}
    )
    courses_settings = CoursesSettings(
        database_url=_fresh("courses", COURSES_DIR),
        redis_url=settings.redis_url,
        nats_url=NATS_URL,
        events_prefix=prefix,
        cache_prefix=f"saga-{uuid.uuid4().hex[:10]}",
        db_pool_size=3,
    )
    payments_app = create_payments_app(payments_settings, token_verifier=mint.verifier())
    courses_app = create_courses_app(courses_settings, token_verifier=mint.verifier())
    stop = asyncio.Event()
    async with (
        payments_app.router.lifespan_context(payments_app),
        courses_app.router.lifespan_context(courses_app),
    ):
        workers = [
            asyncio.create_task(run_payments_worker(payments_settings, stop_event=stop)),
            asyncio.create_task(run_courses_worker(courses_settings, stop_event=stop)),
        ]
        async with (
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=payments_app), base_url="http://payments.test"
            ) as payments,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=courses_app), base_url="http://courses.test"
            ) as courses,
        ):
            try:
                yield {"payments": payments, "courses": courses, "settings": payments_settings}
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*workers), timeout=15)
                nc = await connect(NATS_URL, "saga-cleanup")
                await delete_streams_with_prefix(jetstream_context(nc), prefix)
                await nc.close()


async def _published_paid_course(courses: httpx.AsyncClient, teacher) -> str:
    course = await courses.post(
        "/api/v1/courses",
        json={"title": "Async Python", "price": 4900, "currency": "usd"},
        headers=teacher.headers,
    )
    assert course.status_code == 201, course.text
    course_id = course.json()["id"]
    section = await courses.post(
        f"/api/v1/courses/{course_id}/sections", json={"title": "One"}, headers=teacher.headers
    )
    lesson = await courses.post(
        f"/api/v1/courses/{course_id}/sections/{section.json()['id']}/lessons",
        json={"title": "Event loops", "duration_seconds": 60, "content": "<p>x</p>"},
        headers=teacher.headers,
    )
    assert lesson.status_code == 201, lesson.text
    published = await courses.post(f"/api/v1/courses/{course_id}/publish", headers=teacher.headers)
    assert published.status_code == 200, published.text
    return course_id


async def test_a_purchase_enrolls_and_a_refund_revokes_across_services(suite, make_user):
    payments, courses = suite["payments"], suite["courses"]
    teacher, student = make_user("instructor"), make_user("student")
    course_id = await _published_paid_course(courses, teacher)

    intent: dict[str, Any] = {}

    async def buyable() -> bool:
        response = await payments.post(
            "/api/v1/payments/intents", json={"course_id": course_id}, headers=student.headers
        )
        if response.status_code == 404:  # course.published.v1 not here yet
            return False
        assert response.status_code == 201, response.text
        intent.update(response.json())
        return True

    # The first event also waits for both workers to start (streams, consumers): that
    # start-up is not the cross-service promise, so it gets a start-up allowance.
    took = await _within(WORKERS_START_ALLOWANCE, buyable)
    print(f"published → buyable: {took * 1000:.0f} ms")
    assert (intent["amount"], intent["currency"]) == (4900, "usd")

    async def enrolled() -> bool:
        mine = await courses.get("/api/v1/enrollments", headers=student.headers)
        return [e["course_id"] for e in mine.json()["items"]] == [course_id]

    assert not await enrolled()
    confirmation = await confirm_payment(
        suite["settings"],
        uuid.UUID(intent["payment_id"]),
        webhook_url="http://payments.test/api/v1/payments/webhooks/stripe",
        client=payments,
    )
    assert confirmation.status_code == 200
    took = await _within(CROSS_SERVICE_DEADLINE, enrolled)
    print(f"webhook accepted → enrollment visible: {took * 1000:.0f} ms")
    detail = await courses.get(f"/api/v1/courses/{course_id}", headers=student.headers)
    assert detail.json()["is_enrolled"] is True

    refund = await payments.post(
        f"/api/v1/payments/{intent['payment_id']}/refund", headers=student.headers
    )
    assert refund.status_code == 200 and refund.json()["status"] == "refunded"

    async def revoked() -> bool:
        return not await enrolled()

    took = await _within(CROSS_SERVICE_DEADLINE, revoked)
    print(f"refund accepted → enrollment gone: {took * 1000:.0f} ms")
