"""Only deliveries signed with the endpoint's secret, recently, are trusted."""

from __future__ import annotations

import json
import time

from payments_service.dev_webhooks import event_document

WEBHOOK = "/api/v1/payments/webhooks/stripe"


def _event() -> dict:
    return event_document("customer.created", {"id": "cus_123", "object": "customer"})


async def test_a_correctly_signed_event_is_accepted(client, sign):
    body, headers = sign(_event())
    response = await client.post(WEBHOOK, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "duplicate": False, "type": "customer.created"}


async def test_a_tampered_body_is_refused(client, sign):
    event = _event()
    _, headers = sign(event)
    event["data"]["object"]["id"] = "cus_666"
    response = await client.post(WEBHOOK, content=json.dumps(event), headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/invalid-webhook")


async def test_a_signature_made_with_another_secret_is_refused(client, sign):
    body, headers = sign(_event(), secret="whsec_not_ours")
    response = await client.post(WEBHOOK, content=body, headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_stale_timestamp_is_refused_even_with_a_valid_signature(client, sign, settings):
    stale = int(time.time()) - settings.stripe_webhook_tolerance - 60
    body, headers = sign(_event(), timestamp=stale)
    response = await client.post(WEBHOOK, content=body, headers=headers)
    assert response.status_code == 400
    assert "tolerance" in response.json()["detail"]


async def test_a_missing_signature_header_is_refused(client):
    response = await client.post(
        WEBHOOK, content=json.dumps(_event()), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "The Stripe-Signature header is missing."


async def test_a_signed_body_that_is_not_json_is_refused(client, settings):
    from payments_service.dev_webhooks import signature_header

    body = b"not json"
    secret = settings.stripe_webhook_secret.get_secret_value()
    response = await client.post(
        WEBHOOK, content=body, headers={"Stripe-Signature": signature_header(body, secret)}
    )
    assert response.status_code == 400


async def test_the_webhook_needs_no_access_token_but_other_routes_do(client):
    assert (await client.get("/api/v1/payments")).status_code == 401
