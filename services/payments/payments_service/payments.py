"""Course payments: who may see them, and the state machine Stripe's word drives.

States and transitions (anything else is ignored, so out-of-order or repeated
deliveries cannot corrupt a payment)::

    pending ──success──▶ succeeded ──refund──▶ refunded
       │                     ▲
       └──failure──▶ failed ─┘  (a later attempt on the same PaymentIntent may succeed)

- a failure after the success (or after the refund) is ignored;
- a full refund reported while the payment is still pending or failed — the refund's
  webhook overtook the success's — is remembered (``refund_reported_at``); when the
  success arrives, the payment goes straight to refunded and both
  ``payment.succeeded.v1`` and ``payment.refunded.v1`` are written, in that order, so
  every consumer sees a paid-then-refunded purchase (courses grants, then revokes);
- a partial refund (made in Stripe's dashboard; this API refunds in full) is recorded
  in ``amount_refunded`` and leaves access in place;
- a refund of a refunded payment changes nothing (our refund call and Stripe's
  ``charge.refunded`` webhook both report the same refund).

Each transition writes its event to the outbox in the caller's transaction. Callers
lock the payment row first (:func:`lock_payment`), so concurrent deliveries about one
payment apply one after the other.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from payments_service.models import (
    FAILED,
    PENDING,
    REFUNDED,
    SUCCEEDED,
    outbox,
    payments,
)
from payments_service.schemas import PaymentOut
from unpuzzle_common.auth import Principal
from unpuzzle_common.errors import Forbidden, NotFound, ValidationFailed
from unpuzzle_common.events.outbox import add_event
from unpuzzle_common.events.schemas import PaymentRefunded, PaymentSucceeded
from unpuzzle_common.pagination import Page, PageParams, encode_cursor

log = logging.getLogger(__name__)

SOURCE = "payments"


# -- reading ------------------------------------------------------------------------------


async def lock_payment(session: AsyncSession, payment_id: uuid.UUID) -> Any | None:
    """The payment row, locked for this transaction (None when unknown)."""
    query = select(payments).where(payments.c.id == payment_id).with_for_update()
    return (await session.execute(query)).first()


async def lock_payment_by_provider_id(session: AsyncSession, provider_id: str) -> Any | None:
    query = select(payments).where(payments.c.provider_payment_id == provider_id).with_for_update()
    return (await session.execute(query)).first()


async def visible_payment(
    session: AsyncSession, payment_id: uuid.UUID, principal: Principal
) -> Any:
    """The payment if the caller bought it or is an admin; 404 for everyone else."""
    row = (await session.execute(select(payments).where(payments.c.id == payment_id))).first()
    if row is None or not (row.user_id == principal.user_id or principal.is_admin):
        raise NotFound("No such payment.")
    return row


def refundable_until(row: Any, window: timedelta) -> datetime | None:
    """Until when the buyer may refund alone (only a succeeded payment has a window)."""
    if row.status != SUCCEEDED or row.succeeded_at is None:
        return None
    return row.succeeded_at + window


def payment_out(row: Any, window: timedelta) -> PaymentOut:
    return PaymentOut(
        id=row.id,
        user_id=row.user_id,
        course_id=row.course_id,
        amount=row.amount,
        currency=row.currency,
        status=row.status,
        provider=row.provider,
        provider_payment_id=row.provider_payment_id,
        amount_refunded=row.amount_refunded,
        failure_reason=row.failure_reason,
        created_at=row.created_at,
        succeeded_at=row.succeeded_at,
        failed_at=row.failed_at,
        refunded_at=row.refunded_at,
        refundable_until=refundable_until(row, window),
    )


async def list_payments(
    session: AsyncSession,
    principal: Principal,
    page: PageParams,
    *,
    user_id: uuid.UUID | None,
    window: timedelta,
) -> Page[PaymentOut]:
    """The caller's payments, newest first; an admin may ask for anyone's."""
    owner = user_id or principal.user_id
    if owner != principal.user_id and not principal.is_admin:
        raise Forbidden("Only admins may list other users' payments.")
    query = select(payments).where(payments.c.user_id == owner)
    if page.after:
        try:
            at = datetime.fromisoformat(str(page.after["c"]))
            last = uuid.UUID(str(page.after["i"]))
        except (KeyError, ValueError) as exc:
            raise ValidationFailed.field("cursor", "not a valid cursor") from exc
        query = query.where(
            or_(
                payments.c.created_at < at,
                and_(payments.c.created_at == at, payments.c.id < last),
            )
        )
    query = query.order_by(payments.c.created_at.desc(), payments.c.id.desc()).limit(page.limit + 1)
    rows = (await session.execute(query)).all()
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    next_cursor = None
    if has_more and rows:
        next_cursor = encode_cursor({"c": rows[-1].created_at.isoformat(), "i": str(rows[-1].id)})
    return Page[PaymentOut](items=[payment_out(r, window) for r in rows], next_cursor=next_cursor)


# -- transitions --------------------------------------------------------------------------


async def _set(session: AsyncSession, payment_id: uuid.UUID, **values: Any) -> Any:
    return (
        await session.execute(
            update(payments)
            .where(payments.c.id == payment_id)
            .values(**values, updated_at=func.now())
            .returning(payments)
        )
    ).one()


async def _announce_success(session: AsyncSession, row: Any) -> None:
    await add_event(
        session,
        outbox,
        PaymentSucceeded(
            payment_id=row.id,
            user_id=row.user_id,
            course_id=row.course_id,
            amount=row.amount,
            currency=row.currency,
        ),
        source=SOURCE,
    )


async def _announce_refund(session: AsyncSession, row: Any) -> None:
    await add_event(
        session,
        outbox,
        PaymentRefunded(
            payment_id=row.id,
            user_id=row.user_id,
            course_id=row.course_id,
            amount=row.amount,
            currency=row.currency,
        ),
        source=SOURCE,
    )


async def mark_succeeded(session: AsyncSession, payment: Any, *, at: datetime) -> str:
    """Apply "Stripe took the money"; returns what it did."""
    if payment.status in (SUCCEEDED, REFUNDED):
        return f"ignored: already {payment.status}"
    if payment.refund_reported_at is not None:
        row = await _set(
            session,
            payment.id,
            status=REFUNDED,
            succeeded_at=at,
            refunded_at=payment.refund_reported_at,
            failure_reason=None,
        )
        await _announce_success(session, row)
        await _announce_refund(session, row)
        return "succeeded and refunded (the refund was reported first)"
    row = await _set(session, payment.id, status=SUCCEEDED, succeeded_at=at, failure_reason=None)
    await _announce_success(session, row)
    return "succeeded"


async def mark_failed(session: AsyncSession, payment: Any, *, reason: str, at: datetime) -> str:
    """Apply "an attempt to pay failed"; a payment that already succeeded ignores it."""
    if payment.status not in (PENDING, FAILED):
        return f"ignored: already {payment.status}"
    await _set(session, payment.id, status=FAILED, failed_at=at, failure_reason=reason[:500])
    return "failed"


async def mark_refunded(
    session: AsyncSession,
    payment: Any,
    *,
    at: datetime,
    amount_refunded: int,
    refund_id: str | None = None,
) -> str:
    """Apply "Stripe refunded ``amount_refunded`` of it" (see the module documentation)."""
    if payment.status == REFUNDED:
        return "ignored: already refunded"
    full = amount_refunded >= payment.amount
    if payment.status in (PENDING, FAILED):
        if not full:
            await _set(session, payment.id, amount_refunded=amount_refunded)
            return "partial refund recorded before the success"
        await _set(
            session,
            payment.id,
            amount_refunded=amount_refunded,
            refund_reported_at=at,
            provider_refund_id=refund_id or payment.provider_refund_id,
        )
        return "refund remembered until the success arrives"
    if not full:
        await _set(session, payment.id, amount_refunded=amount_refunded)
        return "partial refund recorded"
    row = await _set(
        session,
        payment.id,
        status=REFUNDED,
        refunded_at=at,
        amount_refunded=amount_refunded,
        provider_refund_id=refund_id or payment.provider_refund_id,
    )
    await _announce_refund(session, row)
    return "refunded"
