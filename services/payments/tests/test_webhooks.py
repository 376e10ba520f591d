"""Stripe's payment events: applied once per event id, in any order, with their outbox rows."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select

from payments_service.models import provider_events

SUCCEEDED = "payment.succeeded.v1"
REFUNDED = "payment.refunded.v1"


async def _open_payment(make_user, publish_course, buy, *, price: int = 4900):
    student = make_user()
    course_id = await publish_course(price=price)
    return student, course_id, await buy(student, course_id)


async def test_a_success_delivered_five_times_counts_once(
    make_user, publish_course, buy, send_event, stripe_intent, payment_row, outbox_events
):
    student, course_id, payment = await _open_payment(make_user, publish_course, buy)
    intent = stripe_intent(payment)
    answers = [
        await send_event("payment_intent.succeeded", intent, event_id="evt_same_success")
        for _ in range(5)
    ]
    assert [a.status_code for a in answers] == [200] * 5
    assert [a.json()["duplicate"] for a in answers] == [False, True, True, True, True]
    row = await payment_row(payment["payment_id"])
    assert row.status == "succeeded" and row.succeeded_at is not None
    events = await outbox_events(SUCCEEDED)
    assert len(events) == 1
    assert events[0]["data"] == {
        "payment_id": payment["payment_id"],
        "user_id": str(student.id),
        "course_id": str(course_id),
        "amount": 4900,
        "currency": "usd",
    }
    assert events[0]["source"] == "payments" and events[0]["subject"] == payment["payment_id"]


async def test_concurrent_duplicate_deliveries_count_once(
    make_user, publish_course, buy, send_event, stripe_intent, sessions, outbox_events
):
    _, _, payment = await _open_payment(make_user, publish_course, buy)
    intent = stripe_intent(payment)
    answers = await asyncio.gather(
        *(
            send_event("payment_intent.succeeded", intent, event_id="evt_concurrent")
            for _ in range(5)
        )
    )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert sorted(a.json()["duplicate"] for a in answers) == [False, True, True, True, True]
    assert len(await outbox_events(SUCCEEDED)) == 1
    async with sessions() as session:
        count = select(func.count()).select_from(provider_events)
        assert (await session.execute(count)).scalar_one() == 1


async def test_two_success_events_about_one_payment_count_once(
    make_user, publish_course, buy, send_event, stripe_intent, outbox_events
):
    # Stripe can announce the same fact in two events (e.g. a resend from the dashboard).
    _, _, payment = await _open_payment(make_user, publish_course, buy)
    intent = stripe_intent(payment)
    await asyncio.gather(
        send_event("payment_intent.succeeded", intent),
        send_event("payment_intent.succeeded", intent),
    )
    assert len(await outbox_events(SUCCEEDED)) == 1


async def test_a_failure_after_the_success_is_ignored(
    make_user, publish_course, buy, send_event, stripe_intent, payment_row, outbox_events
):
    _, _, payment = await _open_payment(make_user, publish_course, buy)
    now = int(time.time())
    await send_event("payment_intent.succeeded", stripe_intent(payment), created=now)
    failed = stripe_intent(
        payment,
        status="requires_payment_method",
        last_payment_error={"code": "card_declined", "message": "Your card was declined."},
    )
    response = await send_event("payment_intent.payment_failed", failed, created=now - 5)
    assert response.status_code == 200
    row = await payment_row(payment["payment_id"])
    assert row.status == "succeeded" and row.failure_reason is None
    assert len(await outbox_events(SUCCEEDED)) == 1


async def test_a_failed_attempt_then_a_success_is_a_success(
    make_user, publish_course, buy, send_event, stripe_intent, payment_row, outbox_events
):
    _, _, payment = await _open_payment(make_user, publish_course, buy)
    failed = stripe_intent(
        payment,
        status="requires_payment_method",
        last_payment_error={"code": "card_declined", "message": "Your card was declined."},
    )
    await send_event("payment_intent.payment_failed", failed)
    row = await payment_row(payment["payment_id"])
    assert (row.status, row.failure_reason) == ("failed", "Your card was declined.")
    await send_event("payment_intent.succeeded", stripe_intent(payment))
    row = await payment_row(payment["payment_id"])
    assert (row.status, row.failure_reason) == ("succeeded", None)
    assert len(await outbox_events(SUCCEEDED)) == 1


async def test_a_refund_reported_before_the_success_is_kept_and_applied_after_it(
    make_user,
    publish_course,
    buy,
    send_event,
    stripe_intent,
    payment_row,
    outbox_events,
    charge_refunded,
):
    _, _, payment = await _open_payment(make_user, publish_course, buy)
    intent = stripe_intent(payment)
    early = await send_event("charge.refunded", charge_refunded(intent))
    assert early.status_code == 200
    row = await payment_row(payment["payment_id"])
    assert row.status == "pending" and row.refund_reported_at is not None
    assert await outbox_events() == []

    await send_event("payment_intent.succeeded", intent)
    row = await payment_row(payment["payment_id"])
    assert row.status == "refunded" and row.succeeded_at and row.refunded_at
    # Paid, then refunded, in that order: courses grants and revokes, analytics nets zero.
    assert [e["type"] for e in await outbox_events()] == [SUCCEEDED, REFUNDED]


async def test_a_refund_after_the_success_refunds_once(
    make_user,
    publish_course,
    buy,
    send_event,
    stripe_intent,
    payment_row,
    outbox_events,
    charge_refunded,
):
    _, _, payment = await _open_payment(make_user, publish_course, buy)
    intent = stripe_intent(payment)
    await send_event("payment_intent.succeeded", intent)
    charge = charge_refunded(intent)
    await send_event("charge.refunded", charge)
    await send_event("charge.refunded", charge)  # a second event about the same refund
    row = await payment_row(payment["payment_id"])
    assert (row.status, row.amount_refunded) == ("refunded", 4900)
    refunds = await outbox_events(REFUNDED)
    assert len(refunds) == 1 and refunds[0]["data"]["amount"] == 4900
    # A success arriving after the refund changes nothing either.
    await send_event("payment_intent.succeeded", intent)
    assert (await payment_row(payment["payment_id"])).status == "refunded"
    assert len(await outbox_events(SUCCEEDED)) == 1


async def test_a_partial_refund_keeps_the_purchase(
    make_user,
    publish_course,
    buy,
    send_event,
    stripe_intent,
    payment_row,
    outbox_events,
    charge_refunded,
):
    _, _, payment = await _open_payment(make_user, publish_course, buy)
    intent = stripe_intent(payment)
    await send_event("payment_intent.succeeded", intent)
    await send_event("charge.refunded", charge_refunded(intent, amount_refunded=1000))
    row = await payment_row(payment["payment_id"])
    assert (row.status, row.amount_refunded) == ("succeeded", 1000)
    assert await outbox_events(REFUNDED) == []


async def test_events_about_payments_we_do_not_know_are_acknowledged(
    send_event, outbox_events, sessions
):
    stranger = {
        "id": "pi_not_ours",
        "object": "payment_intent",
        "amount": 100,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {},
    }
    assert (await send_event("payment_intent.succeeded", stranger)).status_code == 200
    assert (
        await send_event("invoice.paid", {"id": "in_1", "object": "invoice"})
    ).status_code == 200
    assert await outbox_events() == []
    async with sessions() as session:
        outcomes = (await session.execute(select(provider_events.c.outcome))).scalars().all()
    assert sorted(outcomes) == ["ignored: not a payment of ours", "ignored: not handled"]
