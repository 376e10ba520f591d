"""Stripe's webhook endpoint (no access token: the signature is the proof)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from payments_service import webhooks
from payments_service.api.deps import PaymentsContext, payments_context
from payments_service.schemas import WebhookReceipt

router = APIRouter(prefix="/api/v1/payments", tags=["webhooks"])


@router.post(
    "/webhooks/stripe",
    response_model=WebhookReceipt,
    responses={400: {"description": "Missing, invalid or expired Stripe-Signature."}},
)
async def stripe_webhook(
    request: Request, ctx: PaymentsContext = Depends(payments_context)
) -> WebhookReceipt:
    """Receive a Stripe event; applied once per event id, whatever the deliveries."""
    event = webhooks.verify_event(
        await request.body(),
        request.headers.get("stripe-signature"),
        secret=ctx.settings.stripe_webhook_secret.get_secret_value(),
        tolerance=ctx.settings.stripe_webhook_tolerance,
    )
    result = await webhooks.apply_event(ctx.sessions, event, ctx.plans)
    return WebhookReceipt(duplicate=result.duplicate, type=event.type)
