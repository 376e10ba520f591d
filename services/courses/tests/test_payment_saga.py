"""The enrollment saga: payment.succeeded.v1 grants, payment.refunded.v1 revokes.

Most cases hand envelopes straight to the payments consumer's ``apply`` (inbox, handler
and cache invalidation, without the broker); one runs the consumer against JetStream.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select

from courses_service.courses import create_course
from courses_service.models import enrollments, inbox, payment_grants
from unpuzzle_common.db import transaction
from unpuzzle_common.events import ensure_service_stream, subject_for
from unpuzzle_common.events.envelope import Envelope
from unpuzzle_common.events.schemas import PaymentRefunded, PaymentSucceeded


def succeeded(user, course_id, payment_id=None, amount=4900) -> Envelope:
    return Envelope.new(
        PaymentSucceeded(
            payment_id=payment_id or uuid.uuid4(),
            user_id=user.id,
            course_id=uuid.UUID(str(course_id)),
            amount=amount,
            currency="usd",
        ),
        source="payments",
    )


def refunded(payment: Envelope) -> Envelope:
    data = payment.parsed()
    return Envelope.new(
        PaymentRefunded(
            payment_id=data.payment_id,
            user_id=data.user_id,
            course_id=data.course_id,
            amount=data.amount,
        ),
        source="payments",
    )


@pytest.fixture
def deliver(consumer):
    """Apply one envelope as the payments consumer does, without the broker in between."""
    return consumer("payments").apply


@pytest.fixture
async def paid_course(make_user, make_course):
    teacher = await make_user("instructor")
    student = await make_user("student")
    return student, await make_course(teacher, price=4900)


async def enrollment_of(sessions, user_id, course_id):
    async with sessions() as session:
        return (
            await session.execute(
                select(enrollments).where(
                    enrollments.c.user_id == user_id, enrollments.c.course_id == course_id
                )
            )
        ).first()


async def test_payment_grants_the_enrollment_once(
    client, paid_course, deliver, sessions, outbox_events
):
    student, course = paid_course
    payment = succeeded(student, course["id"])
    await deliver(payment)
    # The same payment announced again (a second event about it): no second effect.
    await deliver(succeeded(student, course["id"], payment_id=payment.parsed().payment_id))
    row = await enrollment_of(sessions, student.id, course["id"])
    assert row.status == "active" and row.source == str(payment.parsed().payment_id)
    events = await outbox_events("enrollment.created.v1")
    assert len(events) == 1 and events[0]["data"]["source"] == row.source
    detail = await client.get(f"/api/v1/courses/{course['id']}", headers=student.headers)
    assert detail.json()["is_enrolled"] is True and detail.json()["enrollment_count"] == 1
    mine = (await client.get("/api/v1/enrollments", headers=student.headers)).json()
    assert [e["course_id"] for e in mine["items"]] == [course["id"]]
    again = await client.post(f"/api/v1/courses/{course['id']}/enroll", headers=student.headers)
    assert again.status_code == 200, "already paid: the free path answers the enrollment"
    assert again.json()["id"] == str(row.id)


async def test_refund_revokes_and_a_repeated_refund_does_nothing(
    client, paid_course, deliver, sessions, outbox_events
):
    student, course = paid_course
    payment = succeeded(student, course["id"])
    await deliver(payment)
    refund = refunded(payment)
    await deliver(refund)
    await deliver(refunded(payment))
    row = await enrollment_of(sessions, student.id, course["id"])
    assert row.status == "revoked" and row.revoked_at is not None
    revoked = await outbox_events("enrollment.revoked.v1")
    assert len(revoked) == 1 and revoked[0]["data"]["enrollment_id"] == str(row.id)
    detail = await client.get(f"/api/v1/courses/{course['id']}", headers=student.headers)
    assert detail.json()["is_enrolled"] is False and detail.json()["enrollment_count"] == 0
    assert (await client.get("/api/v1/enrollments", headers=student.headers)).json()["items"] == []


async def test_refund_before_success_means_the_success_grants_nothing(
    paid_course, deliver, sessions, outbox_events
):
    student, course = paid_course
    payment = succeeded(student, course["id"])
    await deliver(refunded(payment))
    await deliver(payment)
    assert await enrollment_of(sessions, student.id, course["id"]) is None
    assert await outbox_events("enrollment.created.v1") == []
    async with sessions() as session:
        grant = (await session.execute(select(payment_grants))).one()
    assert grant.status == "refunded"


async def test_a_new_payment_after_a_refund_reactivates_the_enrollment(
    paid_course, deliver, sessions, outbox_events
):
    student, course = paid_course
    first = succeeded(student, course["id"])
    await deliver(first)
    await deliver(refunded(first))
    second = succeeded(student, course["id"])
    await deliver(second)
    row = await enrollment_of(sessions, student.id, course["id"])
    assert row.status == "active" and row.source == str(second.parsed().payment_id)
    assert len(await outbox_events("enrollment.created.v1")) == 2


async def test_refunding_one_of_two_payments_keeps_access(paid_course, deliver, sessions):
    student, course = paid_course
    first, second = succeeded(student, course["id"]), succeeded(student, course["id"])
    await deliver(first)
    await deliver(second)
    await deliver(refunded(first))
    row = await enrollment_of(sessions, student.id, course["id"])
    assert row.status == "active" and row.source == str(second.parsed().payment_id)
    await deliver(refunded(second))
    assert (await enrollment_of(sessions, student.id, course["id"])).status == "revoked"


async def test_payment_for_a_course_not_known_yet_is_kept_until_it_exists(
    client, make_user, deliver, sessions
):
    teacher = await make_user("instructor")
    student = await make_user("student")
    course_id = uuid.uuid4()
    await deliver(succeeded(student, course_id))
    row = await enrollment_of(sessions, student.id, course_id)
    assert row.status == "active"
    # The course appears (e.g. restored from a backup): the student has access at once.
    async with transaction(sessions) as session:
        await create_course(
            session,
            instructor_id=teacher.id,
            title="Arrived late",
            description="",
            price=4900,
            currency="usd",
            category_id=None,
            course_id=course_id,
        )
    detail = await client.get(f"/api/v1/courses/{course_id}", headers=student.headers)
    assert detail.status_code == 200, "a draft, visible because the student is enrolled"
    assert detail.json()["is_enrolled"] is True and detail.json()["enrollment_count"] == 1


async def test_real_consumer_applies_a_duplicated_payment_once_and_the_refund(
    settings, js, consumer, paid_course, sessions, outbox_events, eventually, count_rows
):
    student, course = paid_course
    await ensure_service_stream(js, settings.events_prefix, "payments")
    payments = consumer("payments", js)
    payment = succeeded(student, course["id"])
    subject = subject_for(settings.events_prefix, payment.type)
    # Delivered twice by the broker (distinct message ids defeat JetStream's own dedup).
    for n in range(2):
        await js.publish(subject, payment.to_json(), headers={"Nats-Msg-Id": f"{payment.id}-{n}"})
    stop = asyncio.Event()
    task = asyncio.create_task(payments.run(stop))
    try:

        async def enrolled():
            row = await enrollment_of(sessions, student.id, course["id"])
            return row is not None and row.status == "active"

        await eventually(enrolled)
        await eventually(lambda: _inbox_has(count_rows, payments.name, 1))
        refund = refunded(payment)
        await js.publish(
            subject_for(settings.events_prefix, refund.type),
            refund.to_json(),
            headers={"Nats-Msg-Id": str(refund.id)},
        )

        async def revoked():
            row = await enrollment_of(sessions, student.id, course["id"])
            return row.status == "revoked"

        await eventually(revoked)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert len(await outbox_events("enrollment.created.v1")) == 1
    assert len(await outbox_events("enrollment.revoked.v1")) == 1
    assert await count_rows(enrollments) == 1
    assert await count_rows(inbox) == 2


async def _inbox_has(count_rows, consumer: str, n: int) -> bool:
    return await count_rows(inbox, inbox.c.consumer == consumer) == n
