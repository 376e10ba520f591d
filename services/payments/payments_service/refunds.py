"""Refunding a course purchase in full, through Stripe.

Who may: an admin, any time; the buyer, within ``refund_window_days`` of the
payment's success (403 after it); anyone else sees 404, as for reading it.
What: only a succeeded payment (409 while pending or failed); refunding a refunded
payment answers it again, unchanged.

Stripe is called first with the idempotency key ``refund-<payment id>`` (so two
concurrent requests make one refund); once it accepted, the payment becomes refunded
and ``payment.refunded.v1`` is written in the same transaction. Stripe's own
``charge.refunded`` webhook for the same refund then finds it refunded and changes
nothing — and if the webhook wins the race, this request finds it refunded instead.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payments_service.models import REFUNDED, SUCCEEDED
from payments_service.payments import lock_payment, mark_refunded, visible_payment
from payments_service.provider import PaymentProviderError, StripeGateway
from unpuzzle_common.auth import Principal
from unpuzzle_common.db import transaction
from unpuzzle_common.errors import Conflict, Forbidden


def check_refund_allowed(
    payment: Any, principal: Principal, *, window: timedelta, now: datetime
) -> None:
    """Raise unless ``principal`` may refund ``payment`` now (it is visible to them)."""
    if payment.status != SUCCEEDED:
        raise Conflict(f"Only a succeeded payment can be refunded; this one is {payment.status}.")
    if principal.is_admin:
        return
    if payment.succeeded_at is None or now > payment.succeeded_at + window:
        days = window.days
        raise Forbidden(
            f"The refund window ({days} days after the purchase) has closed; "
            "ask support for a refund."
        )


async def refund_payment(
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    *,
    payment_id: uuid.UUID,
    principal: Principal,
    window: timedelta,
    now: datetime | None = None,
) -> Any:
    """Refund the payment in full; returns its row (refunded)."""
    now = now or datetime.now(UTC)
    async with sessions() as session:
        payment = await visible_payment(session, payment_id, principal)
    if payment.status == REFUNDED:
        return payment
    check_refund_allowed(payment, principal, window=window, now=now)
    refund = await gateway.refund_payment(
        payment_id=payment.id, provider_payment_id=payment.provider_payment_id
    )
    if refund.status in ("failed", "canceled"):
        raise PaymentProviderError(f"The payment provider did not refund it ({refund.status}).")
    async with transaction(sessions) as session:
        locked = await lock_payment(session, payment.id)
        await mark_refunded(
            session,
            locked,
            at=now,
            # A full refund (of what a dashboard refund may have left): all of it is back.
            amount_refunded=locked.amount,
            refund_id=refund.id,
        )
        return await lock_payment(session, payment.id)
