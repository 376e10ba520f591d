"""Stripe's webhooks: verified, applied once, in one transaction with their effects.

A delivery is trusted only when ``stripe.Webhook.construct_event`` accepts its
``Stripe-Signature`` (HMAC-SHA256 of ``<timestamp>.<body>`` with the endpoint's
signing secret) and the timestamp is within the tolerance — an old, replayed
delivery is refused like a forged one (400).

Each event is recorded in ``provider_events`` by its Stripe id in the same
transaction as its effect. A redelivery (Stripe retries until it gets a 2xx, and may
deliver twice anyway) finds the row and changes nothing; two concurrent deliveries of
one event serialise on the row's primary key, and the second sees the first's commit.

Handled: ``payment_intent.succeeded``, ``payment_intent.payment_failed``,
``charge.refunded`` (see payments_service.payments for the state machine) and
``customer.subscription.created|updated|deleted`` (payments_service.subscriptions).
Other types are recorded and acknowledged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payments_service.models import payments, provider_events
from payments_service.payments import (
    lock_payment,
    lock_payment_by_provider_id,
    mark_failed,
    mark_refunded,
    mark_succeeded,
)
from payments_service.plans import PlanCatalog
from payments_service.provider import from_timestamp
from payments_service.subscriptions import apply_provider_subscription
from unpuzzle_common.db import transaction
from unpuzzle_common.errors import BadRequest

log = logging.getLogger(__name__)


class InvalidWebhook(BadRequest):
    slug = "invalid-webhook"


@dataclass(frozen=True)
class VerifiedEvent:
    id: str
    type: str
    created: datetime
    object: dict[str, Any]


@dataclass(frozen=True)
class WebhookResult:
    event: VerifiedEvent
    duplicate: bool
    outcome: str


def verify_event(
    payload: bytes, signature: str | None, *, secret: str, tolerance: int
) -> VerifiedEvent:
    """The event in ``payload`` if ``signature`` proves Stripe sent it recently; 400 if not."""
    if not signature:
        raise InvalidWebhook("The Stripe-Signature header is missing.")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret, tolerance=tolerance)
    except stripe.SignatureVerificationError as exc:
        raise InvalidWebhook(f"The webhook signature is not valid: {exc.user_message}") from exc
    except ValueError as exc:
        raise InvalidWebhook("The webhook body is not a JSON event.") from exc
    document = event.to_dict(for_json=True)
    try:
        return VerifiedEvent(
            id=str(document["id"]),
            type=str(document["type"]),
            created=from_timestamp(document["created"]),  # type: ignore[arg-type]
            object=dict(document["data"]["object"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidWebhook("The webhook event lacks id, type, created or data.") from exc


Handler = Callable[[AsyncSession, VerifiedEvent, PlanCatalog], Awaitable[str]]


async def _payment_of_intent(session: AsyncSession, intent: dict[str, Any]) -> Any | None:
    """Our payment behind a PaymentIntent: by the id we put in its metadata, else by its id."""
    ours = (intent.get("metadata") or {}).get("payment_id")
    if ours:
        try:
            payment = await lock_payment(session, uuid.UUID(str(ours)))
        except ValueError:
            payment = None
        if payment is not None:
            return payment
    return await lock_payment_by_provider_id(session, str(intent.get("id")))


async def _reconcile_intent(session: AsyncSession, payment: Any, intent: dict[str, Any]) -> None:
    """Record the intent's id if we had not yet; log when Stripe's amount is not ours."""
    if payment.provider_payment_id is None:  # the webhook overtook our own bookkeeping
        await session.execute(
            update(payments)
            .where(payments.c.id == payment.id)
            .values(provider_payment_id=intent["id"])
        )
    received = intent.get("amount_received") or intent.get("amount")
    if received != payment.amount or intent.get("currency") != payment.currency:
        log.error(
            "payment %s: Stripe reports %s %s, we asked for %s %s",
            payment.id,
            received,
            intent.get("currency"),
            payment.amount,
            payment.currency,
        )


async def on_intent_succeeded(
    session: AsyncSession, event: VerifiedEvent, plans: PlanCatalog
) -> str:
    payment = await _payment_of_intent(session, event.object)
    if payment is None:
        return "ignored: not a payment of ours"
    await _reconcile_intent(session, payment, event.object)
    return await mark_succeeded(session, payment, at=event.created)


async def on_intent_failed(session: AsyncSession, event: VerifiedEvent, plans: PlanCatalog) -> str:
    payment = await _payment_of_intent(session, event.object)
    if payment is None:
        return "ignored: not a payment of ours"
    error = event.object.get("last_payment_error") or {}
    reason = error.get("message") or error.get("code") or "the payment failed"
    return await mark_failed(session, payment, reason=str(reason), at=event.created)


async def on_charge_refunded(
    session: AsyncSession, event: VerifiedEvent, plans: PlanCatalog
) -> str:
    charge = event.object
    payment = None
    if charge.get("payment_intent"):
        payment = await lock_payment_by_provider_id(session, str(charge["payment_intent"]))
    if payment is None:
        return "ignored: not a payment of ours"
    refunds = (charge.get("refunds") or {}).get("data") or []
    return await mark_refunded(
        session,
        payment,
        at=event.created,
        amount_refunded=int(charge.get("amount_refunded") or 0),
        refund_id=refunds[0].get("id") if refunds else None,
    )


def _subscription_handler(*, deleted: bool) -> Handler:
    async def handle(session: AsyncSession, event: VerifiedEvent, plans: PlanCatalog) -> str:
        return await apply_provider_subscription(
            session, event.object, plans, event_created=event.created, deleted=deleted
        )

    return handle


HANDLERS: dict[str, Handler] = {
    "payment_intent.succeeded": on_intent_succeeded,
    "payment_intent.payment_failed": on_intent_failed,
    "charge.refunded": on_charge_refunded,
    "customer.subscription.created": _subscription_handler(deleted=False),
    "customer.subscription.updated": _subscription_handler(deleted=False),
    "customer.subscription.deleted": _subscription_handler(deleted=True),
}


async def apply_event(
    sessions: async_sessionmaker[AsyncSession], event: VerifiedEvent, plans: PlanCatalog
) -> WebhookResult:
    """Apply a verified event exactly once (by its id); say whether it was a repeat."""
    async with transaction(sessions) as session:
        recorded = await session.execute(
            insert(provider_events)
            .values(
                event_id=event.id,
                provider="stripe",
                type=event.type[:100],
                provider_created_at=event.created,
            )
            .on_conflict_do_nothing(index_elements=[provider_events.c.event_id])
            .returning(provider_events.c.event_id)
        )
        if recorded.first() is None:
            return WebhookResult(event, duplicate=True, outcome="duplicate")
        handler = HANDLERS.get(event.type)
        outcome = await handler(session, event, plans) if handler else "ignored: not handled"
        await session.execute(
            update(provider_events)
            .where(provider_events.c.event_id == event.id)
            .values(outcome=outcome)
        )
    log.info("stripe event %s (%s): %s", event.id, event.type, outcome)
    return WebhookResult(event, duplicate=False, outcome=outcome)
