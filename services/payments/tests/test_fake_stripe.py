"""The fake Stripe server behaves like Stripe where this service depends on it."""

from __future__ import annotations

import httpx
import pytest

from payments_service.fake_stripe import decode_form

AUTH = {"Authorization": "Bearer sk_test_x"}


def test_form_encoding_is_decoded_like_stripe_does():
    pairs = [
        ("amount", "100"),
        ("metadata[payment_id]", "p1"),
        ("items[0][price]", "price_1"),
        ("items[1][price]", "price_2"),
        ("expand[0]", "latest_invoice"),
    ]
    assert decode_form(pairs) == {
        "amount": "100",
        "metadata": {"payment_id": "p1"},
        "items": [{"price": "price_1"}, {"price": "price_2"}],
        "expand": ["latest_invoice"],
    }


@pytest.fixture
async def stripe_http(fake_stripe):
    fake_stripe.state.reset()
    async with httpx.AsyncClient(base_url=fake_stripe.url, timeout=5) as http:
        yield http


async def test_an_api_key_is_required(stripe_http):
    response = await stripe_http.post("/v1/customers", data={"email": "a@b.c"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_an_idempotency_key_replays_and_refuses_other_parameters(stripe_http, fake_stripe):
    headers = {**AUTH, "Idempotency-Key": "k1"}
    body = {"amount": "100", "currency": "usd"}
    first = await stripe_http.post("/v1/payment_intents", data=body, headers=headers)
    again = await stripe_http.post("/v1/payment_intents", data=body, headers=headers)
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await stripe_http.post(
        "/v1/payment_intents", data={**body, "amount": "200"}, headers=headers
    )
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"
    assert len(fake_stripe.state.of_type("payment_intent")) == 1


async def test_a_declined_card_fails_the_attempt(stripe_http):
    intent = (
        await stripe_http.post(
            "/v1/payment_intents", data={"amount": "100", "currency": "usd"}, headers=AUTH
        )
    ).json()
    declined = await stripe_http.post(
        f"/v1/payment_intents/{intent['id']}/confirm",
        data={"payment_method": "pm_card_chargeDeclined"},
        headers=AUTH,
    )
    assert declined.status_code == 402
    assert declined.json()["error"]["code"] == "card_declined"
    paid = await stripe_http.post(
        f"/v1/payment_intents/{intent['id']}/confirm",
        data={"payment_method": "pm_card_visa"},
        headers=AUTH,
    )
    assert paid.json()["status"] == "succeeded"
    refund = await stripe_http.post(
        "/v1/refunds", data={"payment_intent": intent["id"]}, headers=AUTH
    )
    assert refund.json()["amount"] == 100
    twice = await stripe_http.post(
        "/v1/refunds", data={"payment_intent": intent["id"]}, headers=AUTH
    )
    assert twice.json()["error"]["code"] == "charge_already_refunded"
