"""Starting a purchase: the price from the read model, the refusals, one intent per payment."""

from __future__ import annotations

import uuid

from payments_service.provider import StripeGateway
from payments_service.settings import Settings

INTENTS = "/api/v1/payments/intents"


async def test_an_intent_carries_the_course_price_and_our_payment_id(
    client, make_user, publish_course, fake_stripe, payment_row
):
    student = make_user("student")
    course_id = await publish_course(price=4900, currency="eur")
    response = await client.post(
        INTENTS, json={"course_id": str(course_id)}, headers=student.headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "payment_id",
        "course_id",
        "provider_payment_id",
        "client_secret",
        "amount",
        "currency",
        "status",
    }
    assert (body["amount"], body["currency"], body["status"]) == (4900, "eur", "pending")
    assert body["client_secret"].startswith(body["provider_payment_id"] + "_secret_")
    intent = fake_stripe.state.objects[body["provider_payment_id"]]
    assert intent["metadata"]["payment_id"] == body["payment_id"]
    assert intent["metadata"]["course_id"] == str(course_id)
    assert (intent["amount"], intent["currency"]) == (4900, "eur")
    # Stripe's idempotency key for the create call is our payment id.
    assert any(key == body["payment_id"] for _, key in fake_stripe.state.idempotent)
    row = await payment_row(body["payment_id"])
    assert (row.user_id, row.status, row.provider_payment_id) == (
        student.id,
        "pending",
        body["provider_payment_id"],
    )


async def test_the_price_cannot_come_from_the_client(client, make_user, publish_course):
    course_id = await publish_course(price=4900)
    response = await client.post(
        INTENTS,
        json={"course_id": str(course_id), "amount": 1},
        headers=make_user().headers,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "amount"


async def test_a_free_course_is_refused(client, make_user, publish_course):
    course_id = await publish_course(price=0)
    response = await client.post(
        INTENTS, json={"course_id": str(course_id)}, headers=make_user().headers
    )
    assert response.status_code == 409
    assert response.json()["enroll"]["href"] == f"/api/v1/courses/{course_id}/enroll"


async def test_unknown_and_unpublished_courses_are_not_found(
    client, make_user, publish_course, fake_stripe
):
    student = make_user()
    course_id = await publish_course(price=4900)
    await publish_course(course_id=course_id, price=4900, published=False)
    for unavailable in (course_id, uuid.uuid4()):
        response = await client.post(
            INTENTS, json={"course_id": str(unavailable)}, headers=student.headers
        )
        assert response.status_code == 404, response.text
    assert fake_stripe.state.of_type("payment_intent") == []


async def test_a_course_already_owned_is_refused(client, make_user, publish_course, enrolled, paid):
    student = make_user()
    free_then_priced = await publish_course(price=4900)
    await enrolled(student, free_then_priced)
    bought = await publish_course(price=4900)
    await paid(student, bought)  # succeeded, its enrollment not announced yet
    for course_id in (free_then_priced, bought):
        response = await client.post(
            INTENTS, json={"course_id": str(course_id)}, headers=student.headers
        )
        assert response.status_code == 409, response.text
        assert "already" in response.json()["detail"]


async def test_an_instructor_cannot_buy_their_own_course(client, make_user, publish_course):
    teacher = make_user("instructor")
    course_id = await publish_course(instructor_id=teacher.id)
    response = await client.post(
        INTENTS, json={"course_id": str(course_id)}, headers=teacher.headers
    )
    assert response.status_code == 409


async def test_a_refunded_buyer_may_buy_again_before_the_revocation_arrives(
    client, make_user, publish_course, enrolled, paid
):
    student = make_user()
    course_id = await publish_course()
    payment = await paid(student, course_id)
    await enrolled(student, course_id, source=payment["payment_id"])
    refund = await client.post(
        f"/api/v1/payments/{payment['payment_id']}/refund", headers=student.headers
    )
    assert refund.status_code == 200, refund.text
    again = await client.post(INTENTS, json={"course_id": str(course_id)}, headers=student.headers)
    assert again.status_code == 201, again.text
    assert again.json()["payment_id"] != payment["payment_id"]


async def test_the_same_idempotency_key_replays_the_first_answer(
    client, make_user, publish_course, fake_stripe
):
    student = make_user()
    course_id = await publish_course()
    headers = {**student.headers, "Idempotency-Key": "buy-once-" + uuid.uuid4().hex}
    first = await client.post(INTENTS, json={"course_id": str(course_id)}, headers=headers)
    second = await client.post(INTENTS, json={"course_id": str(course_id)}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert len(fake_stripe.state.of_type("payment_intent")) == 1


async def test_asking_again_answers_the_open_payment(
    client, make_user, publish_course, fake_stripe
):
    student = make_user()
    course_id = await publish_course()
    first = await client.post(INTENTS, json={"course_id": str(course_id)}, headers=student.headers)
    again = await client.post(INTENTS, json={"course_id": str(course_id)}, headers=student.headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert len(fake_stripe.state.of_type("payment_intent")) == 1


async def test_concurrent_requests_open_one_payment_and_only_one_says_created(
    client, make_user, publish_course, fake_stripe
):
    import asyncio

    student = make_user()
    course_id = await publish_course()
    answers = await asyncio.gather(
        *(
            client.post(INTENTS, json={"course_id": str(course_id)}, headers=student.headers)
            for _ in range(4)
        )
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201]
    assert len({a.json()["payment_id"] for a in answers}) == 1
    assert len(fake_stripe.state.of_type("payment_intent")) == 1


async def test_a_new_price_opens_a_new_payment(client, make_user, publish_course, fake_stripe):
    student = make_user()
    course_id = await publish_course(price=4900)
    first = await client.post(INTENTS, json={"course_id": str(course_id)}, headers=student.headers)
    await publish_course(course_id=course_id, price=2900)
    second = await client.post(INTENTS, json={"course_id": str(course_id)}, headers=student.headers)
    assert second.status_code == 201
    assert second.json()["payment_id"] != first.json()["payment_id"]
    assert second.json()["amount"] == 2900


async def test_stripe_down_answers_503_and_the_retry_makes_one_intent(
    app, client, make_user, publish_course, fake_stripe, settings: Settings
):
    student = make_user()
    course_id = await publish_course()
    context = app.state.payments
    working = context.gateway
    context.gateway = StripeGateway(
        settings.model_copy(update={"stripe_api_base": "http://127.0.0.1:9"})
    )
    try:
        down = await client.post(
            INTENTS, json={"course_id": str(course_id)}, headers=student.headers
        )
    finally:
        await context.gateway.aclose()
        context.gateway = working
    assert down.status_code == 503
    assert down.headers["content-type"].startswith("application/problem+json")
    retry = await client.post(INTENTS, json={"course_id": str(course_id)}, headers=student.headers)
    assert retry.status_code == 201, retry.text
    assert len(fake_stripe.state.of_type("payment_intent")) == 1


async def test_an_intent_needs_a_token(client, publish_course):
    course_id = await publish_course()
    response = await client.post(INTENTS, json={"course_id": str(course_id)})
    assert response.status_code == 401
