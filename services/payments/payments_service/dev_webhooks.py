"""Stripe-style webhooks made here: signing, delivering, and confirming a payment in dev.

Stripe signs a webhook with HMAC-SHA256 over ``"<unix time>.<raw body>"`` keyed by the
endpoint's signing secret and sends ``Stripe-Signature: t=<unix time>,v1=<hex>``.
:func:`signature_header` does exactly that, so what it signs passes
``stripe.Webhook.construct_event`` like a delivery from Stripe.

:func:`confirm_payment` is the development stand-in for a buyer paying with Stripe.js:
it confirms the payment's PaymentIntent at the Stripe server in use (the local fake,
or Stripe's test mode) with a test card, then delivers the signed
``payment_intent.succeeded`` (or ``payment_intent.payment_failed``) event to the
webhook URL — the gateway's in ``make up`` — so a whole purchase runs on one machine
without the internet (``python -m payments_service confirm PAYMENT_ID``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from payments_service.models import payments
from payments_service.provider import PaymentProviderError, StripeGateway
from payments_service.settings import Settings
from unpuzzle_common.db import create_engine, session_factory

DECLINED_CARD = "pm_card_chargeDeclined"
TEST_CARD = "pm_card_visa"


def signature_header(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` value Stripe would send with ``payload``."""
    signed_at = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{signed_at}.".encode() + payload, hashlib.sha256)
    return f"t={signed_at},v1={mac.hexdigest()}"


def event_document(
    event_type: str,
    obj: dict[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A Stripe ``event`` object wrapping ``obj`` (what a webhook body holds)."""
    return {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": None,
        "created": int(time.time()) if created is None else created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj},
    }


async def deliver(
    url: str,
    event: dict[str, Any],
    secret: str,
    *,
    client: httpx.AsyncClient | None = None,
) -> httpx.Response:
    """POST the signed event to ``url`` as Stripe does; returns the endpoint's answer."""
    body = json.dumps(event, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": signature_header(body, secret),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    if client is not None:
        return await client.post(url, content=body, headers=headers)
    async with httpx.AsyncClient(timeout=10.0) as own:
        return await own.post(url, content=body, headers=headers)


@dataclass(frozen=True)
class Confirmation:
    event_type: str
    event_id: str
    status_code: int


async def confirm_payment(
    settings: Settings,
    payment_id: uuid.UUID,
    *,
    decline: bool = False,
    webhook_url: str | None = None,
    client: httpx.AsyncClient | None = None,
) -> Confirmation:
    """Pay a pending payment with a test card (or a declined one) and tell the webhook."""
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with session_factory(engine)() as session:
            provider_id = (
                await session.execute(
                    select(payments.c.provider_payment_id).where(payments.c.id == payment_id)
                )
            ).scalar_one_or_none()
    finally:
        await engine.dispose()
    if provider_id is None:
        raise LookupError(f"no payment {payment_id} with a Stripe PaymentIntent")
    gateway = StripeGateway(settings)
    try:
        try:
            intent = await gateway.confirm_payment_intent(
                provider_id, payment_method=DECLINED_CARD if decline else TEST_CARD
            )
        except PaymentProviderError:
            # Declined (Stripe answers 402), or already confirmed: report its state.
            intent = await gateway.payment_intent_document(provider_id)
    finally:
        await gateway.aclose()
    succeeded = intent.get("status") == "succeeded"
    event = event_document(
        "payment_intent.succeeded" if succeeded else "payment_intent.payment_failed", intent
    )
    response = await deliver(
        webhook_url or settings.webhook_url,
        event,
        settings.stripe_webhook_secret.get_secret_value(),
        client=client,
    )
    return Confirmation(event["type"], event["id"], response.status_code)
