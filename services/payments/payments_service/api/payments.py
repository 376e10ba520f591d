"""Course purchases: payment intents, history, one payment, refunds."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from payments_service import payments, purchases, refunds
from payments_service.api.deps import PaymentsContext, payments_context
from payments_service.schemas import IntentCreate, IntentOut, PaymentOut
from unpuzzle_common.auth import Principal, current_principal
from unpuzzle_common.pagination import Page, PageParams, page_params

router = APIRouter(prefix="/api/v1/payments", tags=["payments"])

_PROVIDER_ERRORS = {
    502: {"description": "Stripe refused the call."},
    503: {"description": "Stripe could not be reached; retrying is safe."},
}


@router.post(
    "/intents",
    response_model=IntentOut,
    status_code=201,
    responses={
        200: {"model": IntentOut, "description": "An open payment for this course, again."},
        404: {"description": "No such published course."},
        409: {"description": "A free course, your own course, or one you already have."},
        **_PROVIDER_ERRORS,
    },
)
async def create_intent(
    body: IntentCreate,
    principal: Principal = Depends(current_principal),
    ctx: PaymentsContext = Depends(payments_context),
) -> JSONResponse:
    """Start buying a course: a Stripe PaymentIntent for its current price.

    Pay it with Stripe.js and the ``client_secret``; the payment succeeds when Stripe's
    signed webhook says so, and the enrollment follows. Honours ``Idempotency-Key``.
    """
    intent, created = await purchases.start_purchase(
        ctx.sessions, ctx.gateway, user_id=principal.user_id, course_id=body.course_id
    )
    return JSONResponse(intent.model_dump(mode="json"), status_code=201 if created else 200)


@router.get("", response_model=Page[PaymentOut])
async def list_payments(
    page: PageParams = Depends(page_params),
    user_id: uuid.UUID | None = Query(None, description="Another user's payments (admins)."),
    principal: Principal = Depends(current_principal),
    ctx: PaymentsContext = Depends(payments_context),
) -> Page[PaymentOut]:
    """The caller's payments, newest first; an admin may pass ``user_id``."""
    async with ctx.sessions() as session:
        return await payments.list_payments(
            session, principal, page, user_id=user_id, window=ctx.refund_window
        )


@router.get("/{payment_id}", response_model=PaymentOut, responses={404: {}})
async def get_payment(
    payment_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    ctx: PaymentsContext = Depends(payments_context),
) -> PaymentOut:
    """One payment, for its buyer or an admin (404 for anyone else)."""
    async with ctx.sessions() as session:
        row = await payments.visible_payment(session, payment_id, principal)
    return payments.payment_out(row, ctx.refund_window)


@router.post(
    "/{payment_id}/refund",
    response_model=PaymentOut,
    responses={
        403: {"description": "The buyer's refund window has closed."},
        404: {},
        409: {"description": "The payment has not succeeded."},
        **_PROVIDER_ERRORS,
    },
)
async def refund_payment(
    payment_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    ctx: PaymentsContext = Depends(payments_context),
) -> PaymentOut:
    """Refund in full: an admin any time, the buyer within the refund window."""
    row = await refunds.refund_payment(
        ctx.sessions,
        ctx.gateway,
        payment_id=payment_id,
        principal=principal,
        window=ctx.refund_window,
    )
    return payments.payment_out(row, ctx.refund_window)
