"""Plans and the caller's subscription."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from payments_service import subscriptions
from payments_service.api.deps import PaymentsContext, payments_context
from payments_service.schemas import PlanOut, PlansOut, SubscriptionCreate, SubscriptionOut
from unpuzzle_common.auth import Principal, current_principal

router = APIRouter(prefix="/api/v1/payments", tags=["subscriptions"])


@router.get("/plans", response_model=PlansOut)
async def list_plans(ctx: PaymentsContext = Depends(payments_context)) -> PlansOut:
    """The plans on offer, with their price and AI daily limit (public)."""
    return PlansOut(
        items=[
            PlanOut(
                name=p.name,
                title=p.title,
                price=p.price,
                currency=p.currency,
                interval=p.interval,
                ai_daily_limit=p.ai_daily_limit,
            )
            for p in ctx.plans.plans
        ]
    )


@router.post(
    "/subscriptions",
    response_model=SubscriptionOut,
    status_code=201,
    responses={
        409: {"description": "You already have a subscription."},
        422: {"description": "Unknown plan, or the free plan."},
    },
)
async def subscribe(
    body: SubscriptionCreate,
    principal: Principal = Depends(current_principal),
    ctx: PaymentsContext = Depends(payments_context),
) -> SubscriptionOut:
    """Subscribe to a paid plan. Active at once when Stripe charged the saved card;
    otherwise pending until Stripe reports the first invoice paid."""
    return await subscriptions.subscribe(
        ctx.sessions, ctx.gateway, ctx.plans, principal=principal, plan_name=body.plan
    )


@router.get("/subscriptions/me", response_model=SubscriptionOut)
async def my_subscription(
    principal: Principal = Depends(current_principal),
    ctx: PaymentsContext = Depends(payments_context),
) -> SubscriptionOut:
    """The caller's subscription, or the free plan (``id`` null) without one."""
    async with ctx.sessions() as session:
        row = await subscriptions.current_subscription(session, principal.user_id)
    return subscriptions.subscription_out(row, ctx.plans)


@router.delete(
    "/subscriptions/me",
    status_code=204,
    responses={404: {"description": "No subscription to cancel."}},
)
async def cancel_my_subscription(
    principal: Principal = Depends(current_principal),
    ctx: PaymentsContext = Depends(payments_context),
) -> Response:
    """Cancel at the end of the paid period (the plan stays until then)."""
    await subscriptions.cancel(ctx.sessions, ctx.gateway, ctx.plans, user_id=principal.user_id)
    return Response(status_code=204)
