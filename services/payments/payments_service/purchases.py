"""Starting a course purchase: our payment row, then Stripe's PaymentIntent.

The price and currency come from the course read model (never from the client).
Refused, in this order:

- a course this service does not know as published (never published, unpublished,
  deleted, or published a moment ago and its event not here yet) → 404, as the
  catalog hides it;
- a free course → 409 (``POST /api/v1/courses/{id}/enroll`` is the way in);
- the course's own instructor → 409 (they have access already);
- a buyer who already has access or has paid → 409.

One open intent per buyer, course and price: asking again while a payment is pending
at the same price answers that payment again (200, with its client secret fetched
from Stripe) instead of opening a second one the buyer could also pay. Concurrent
requests for the same buyer and course are serialised by an advisory lock.

Our payment row is committed before Stripe is called, and the call's idempotency key
is the payment id: if Stripe is unreachable the answer is 503 and the row stays
pending without a PaymentIntent; the next request retries the same call with the same
key, so Stripe never holds two intents for one payment.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payments_service.catalog import owns_course, published_course
from payments_service.models import PENDING, payments
from payments_service.provider import StripeGateway
from payments_service.schemas import IntentOut
from unpuzzle_common.db import transaction
from unpuzzle_common.errors import Conflict, NotFound


def _lock_key(user_id: uuid.UUID, course_id: uuid.UUID) -> int:
    digest = hashlib.sha256(f"purchase:{user_id}:{course_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _open_payment(session: AsyncSession, user_id: uuid.UUID, course_id: uuid.UUID) -> Any:
    """The pending payment to pay (existing at the current price, or new)."""
    await session.execute(select(func.pg_advisory_xact_lock(_lock_key(user_id, course_id))))
    course = await published_course(session, course_id)
    if course is None:
        raise NotFound("No such course.")
    if course.price == 0:
        raise Conflict(
            "This course is free: enroll through the courses API.",
            extra={"enroll": {"method": "POST", "href": f"/api/v1/courses/{course_id}/enroll"}},
        )
    if course.instructor_id == user_id:
        raise Conflict("You teach this course; there is nothing to buy.")
    if await owns_course(session, user_id, course_id):
        raise Conflict("You already have access to this course.")
    pending = (
        await session.execute(
            select(payments)
            .where(
                payments.c.user_id == user_id,
                payments.c.course_id == course_id,
                payments.c.status == PENDING,
                payments.c.amount == course.price,
                payments.c.currency == course.currency,
            )
            .order_by(payments.c.created_at.desc())
            .limit(1)
        )
    ).first()
    if pending is not None:
        return pending
    return (
        await session.execute(
            insert(payments)
            .values(
                id=uuid.uuid4(),
                user_id=user_id,
                course_id=course_id,
                amount=course.price,
                currency=course.currency,
                status=PENDING,
            )
            .returning(payments)
        )
    ).one()


async def start_purchase(
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    *,
    user_id: uuid.UUID,
    course_id: uuid.UUID,
) -> tuple[IntentOut, bool]:
    """Open (or reopen) the buyer's payment for a course.

    Returns the intent and whether this call opened it at Stripe (False: an open one
    was answered again).
    """
    async with transaction(sessions) as session:
        payment = await _open_payment(session, user_id, course_id)
    # Whoever stores the Stripe id opened the payment (201); concurrent callers that
    # found the row first make the same Stripe call (idempotent, keyed by payment id)
    # but answer 200. A retry after Stripe was down is the one that opens it.
    created = False
    if payment.provider_payment_id is None:
        intent = await gateway.create_payment_intent(
            payment_id=payment.id,
            user_id=user_id,
            course_id=course_id,
            amount=payment.amount,
            currency=payment.currency,
            description=f"Unpuzzle course {course_id}",
        )
        async with transaction(sessions) as session:
            stored = await session.execute(
                update(payments)
                .where(payments.c.id == payment.id, payments.c.provider_payment_id.is_(None))
                .values(provider_payment_id=intent.id, updated_at=func.now())
            )
            created = stored.rowcount == 1
    else:
        intent = await gateway.retrieve_payment_intent(payment.provider_payment_id)
    return (
        IntentOut(
            payment_id=payment.id,
            course_id=course_id,
            provider_payment_id=intent.id,
            client_secret=intent.client_secret,
            amount=payment.amount,
            currency=payment.currency,
            status=payment.status,
        ),
        created,
    )
