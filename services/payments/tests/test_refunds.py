"""Refunds: the buyer within the window, an admin any time, through Stripe, once."""

from __future__ import annotations

from datetime import datetime


def refund_url(payment: dict) -> str:
    return f"/api/v1/payments/{payment['payment_id']}/refund"


async def test_the_buyer_refunds_within_the_window(
    client, make_user, publish_course, paid, fake_stripe, outbox_events
):
    student = make_user()
    course_id = await publish_course()
    payment = await paid(student, course_id)
    response = await client.post(refund_url(payment), headers=student.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["amount_refunded"], body["refundable_until"]) == (
        "refunded",
        4900,
        None,
    )
    refunds = fake_stripe.state.of_type("refund")
    assert len(refunds) == 1 and refunds[0]["payment_intent"] == payment["provider_payment_id"]
    events = await outbox_events("payment.refunded.v1")
    assert len(events) == 1
    assert events[0]["data"] == {
        "payment_id": payment["payment_id"],
        "user_id": str(student.id),
        "course_id": str(course_id),
        "amount": 4900,
        "currency": "usd",
    }


async def test_the_buyer_cannot_refund_after_the_window(
    client, make_user, publish_course, paid, backdate, fake_stripe, settings
):
    student = make_user()
    payment = await paid(student, await publish_course())
    await backdate(payment["payment_id"], days=settings.refund_window_days + 1)
    response = await client.post(refund_url(payment), headers=student.headers)
    assert response.status_code == 403
    assert "window" in response.json()["detail"]
    assert fake_stripe.state.of_type("refund") == []


async def test_the_window_is_shown_on_the_payment(
    client, make_user, publish_course, paid, settings
):
    student = make_user()
    payment = await paid(student, await publish_course())
    body = (
        await client.get(f"/api/v1/payments/{payment['payment_id']}", headers=student.headers)
    ).json()
    until = datetime.fromisoformat(body["refundable_until"])
    succeeded = datetime.fromisoformat(body["succeeded_at"])
    assert (until - succeeded).days == settings.refund_window_days


async def test_an_admin_refunds_any_time(
    client, make_user, publish_course, paid, backdate, outbox_events
):
    student, admin = make_user(), make_user("admin")
    payment = await paid(student, await publish_course())
    await backdate(payment["payment_id"], days=400)
    response = await client.post(refund_url(payment), headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "refunded"
    assert len(await outbox_events("payment.refunded.v1")) == 1


async def test_a_stranger_sees_no_payment_to_refund(client, make_user, publish_course, paid):
    payment = await paid(make_user(), await publish_course())
    response = await client.post(refund_url(payment), headers=make_user().headers)
    assert response.status_code == 404


async def test_a_pending_payment_cannot_be_refunded(client, make_user, publish_course, buy):
    student = make_user()
    payment = await buy(student, await publish_course())
    response = await client.post(refund_url(payment), headers=student.headers)
    assert response.status_code == 409


async def test_refunding_twice_and_stripes_own_webhook_change_nothing(
    client,
    make_user,
    publish_course,
    paid,
    fake_stripe,
    send_event,
    outbox_events,
):
    student = make_user()
    payment = await paid(student, await publish_course())
    first = await client.post(refund_url(payment), headers=student.headers)
    again = await client.post(refund_url(payment), headers=student.headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    # Stripe then reports the refund it made for us.
    intent = fake_stripe.state.objects[payment["provider_payment_id"]]
    charge = fake_stripe.state.objects[intent["latest_charge"]]
    assert (await send_event("charge.refunded", charge)).status_code == 200
    assert len(fake_stripe.state.of_type("refund")) == 1
    assert len(await outbox_events("payment.refunded.v1")) == 1
