"""Subscriptions to a paid plan: subscribe, cancel at period end, expire.

States: ``pending`` (Stripe created it, the first invoice is not paid yet) →
``active`` → ``canceled`` (ended; terminal). One pending or active subscription per
user (a partial unique index). Without one, a user is on the free plan.

Events, written in the transaction of the change:

- ``subscription.activated.v1`` {user_id, plan, ai_daily_limit} when it becomes active;
- ``subscription.canceled.v1`` {user_id, plan, ai_daily_limit = the free plan's} when it
  *ends* — as the event's schema says, the limit it carries is the one that applies
  from now on. Asking to cancel (``DELETE /subscriptions/me``) only sets
  ``cancel_at_period_end``: the subscriber keeps what they paid for until the period
  ends, and the event follows then (Stripe's ``customer.subscription.deleted``, or the
  ``expire-subscriptions`` job, whichever comes first; the other finds it ended).

Stripe's subscription webhooks are applied in the order Stripe created them: an event
older than the newest applied one (``provider_event_at``) is ignored.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payments_service.models import (
    SUB_ACTIVE,
    SUB_CANCELED,
    SUB_PENDING,
    customers,
    outbox,
    subscriptions,
)
from payments_service.plans import FREE, PlanCatalog
from payments_service.provider import (
    PaymentProviderError,
    PaymentProviderUnavailable,
    ProviderSubscription,
    StripeGateway,
    subscription_of,
)
from payments_service.schemas import SubscriptionOut
from unpuzzle_common.auth import Principal
from unpuzzle_common.db import transaction
from unpuzzle_common.errors import Conflict, NotFound, ValidationFailed
from unpuzzle_common.events.outbox import add_event
from unpuzzle_common.events.schemas import SubscriptionActivated, SubscriptionCanceled

log = logging.getLogger(__name__)

SOURCE = "payments"
#: Stripe statuses in which the subscriber has what they pay for.
PROVIDER_ACTIVE = frozenset({"active", "trialing", "past_due"})
#: Stripe statuses of a subscription that is over.
PROVIDER_ENDED = frozenset({"canceled", "incomplete_expired", "unpaid"})
#: A pending subscription whose first invoice is still unpaid after this long is
#: abandoned (Stripe expires incomplete subscriptions after 23 hours).
PENDING_LIFETIME = timedelta(days=1)


# -- reading ------------------------------------------------------------------------------


async def current_subscription(
    session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False
) -> Any | None:
    query = select(subscriptions).where(
        subscriptions.c.user_id == user_id,
        subscriptions.c.status.in_((SUB_PENDING, SUB_ACTIVE)),
    )
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).first()


def subscription_out(
    row: Any | None, plans: PlanCatalog, *, client_secret: str | None = None
) -> SubscriptionOut:
    """A subscription as the API shows it; no row means the free plan."""
    if row is None:
        return SubscriptionOut(
            id=None,
            plan=FREE,
            status=SUB_ACTIVE,
            ai_daily_limit=plans.free.ai_daily_limit,
            current_period_end=None,
            cancel_at_period_end=False,
        )
    return SubscriptionOut(
        id=row.id,
        plan=row.plan,
        status=row.status,
        ai_daily_limit=plans.limit_of(row.plan),
        current_period_end=row.current_period_end,
        cancel_at_period_end=row.cancel_at_period_end,
        provider_subscription_id=row.provider_subscription_id,
        client_secret=client_secret,
        created_at=row.created_at,
    )


# -- transitions --------------------------------------------------------------------------


async def _set(session: AsyncSession, subscription_id: uuid.UUID, **values: Any) -> Any:
    return (
        await session.execute(
            update(subscriptions)
            .where(subscriptions.c.id == subscription_id)
            .values(**values, updated_at=func.now())
            .returning(subscriptions)
        )
    ).one()


async def activate(session: AsyncSession, row: Any, plans: PlanCatalog) -> Any:
    """Pending → active, announcing the plan's AI limit."""
    row = await _set(session, row.id, status=SUB_ACTIVE, activated_at=func.now())
    await add_event(
        session,
        outbox,
        SubscriptionActivated(
            user_id=row.user_id, plan=row.plan, ai_daily_limit=plans.limit_of(row.plan)
        ),
        source=SOURCE,
    )
    return row


async def end(session: AsyncSession, row: Any, plans: PlanCatalog) -> Any:
    """→ canceled; the free plan's limit is announced if it had been active."""
    ended = await _set(session, row.id, status=SUB_CANCELED, ended_at=func.now())
    if row.status == SUB_ACTIVE:
        await add_event(
            session,
            outbox,
            SubscriptionCanceled(
                user_id=row.user_id, plan=row.plan, ai_daily_limit=plans.free.ai_daily_limit
            ),
            source=SOURCE,
        )
    return ended


def _provider_values(provider: ProviderSubscription) -> dict[str, Any]:
    values: dict[str, Any] = {
        "provider_subscription_id": provider.id,
        "cancel_at_period_end": provider.cancel_at_period_end,
    }
    if provider.current_period_end is not None:
        values["current_period_end"] = provider.current_period_end
    return values


# -- requests -----------------------------------------------------------------------------


async def _customer_id(
    sessions: async_sessionmaker[AsyncSession], gateway: StripeGateway, principal: Principal
) -> str:
    async with sessions() as session:
        known = (
            await session.execute(
                select(customers.c.provider_customer_id).where(
                    customers.c.user_id == principal.user_id
                )
            )
        ).scalar_one_or_none()
    if known is not None:
        return known
    # The idempotency key is per user: concurrent first subscriptions make one customer.
    created = await gateway.create_customer(user_id=principal.user_id, email=principal.email)
    async with transaction(sessions) as session:
        await session.execute(
            pg_insert(customers)
            .values(user_id=principal.user_id, provider_customer_id=created)
            .on_conflict_do_nothing()
        )
    return created


async def subscribe(
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    plans: PlanCatalog,
    *,
    principal: Principal,
    plan_name: str,
) -> SubscriptionOut:
    """Subscribe the caller to a paid plan; 409 when they already have a subscription."""
    plan = plans.get(plan_name)
    if plan is None:
        raise ValidationFailed.field(
            "plan", f"unknown plan; one of {[p.name for p in plans.plans]}"
        )
    if plan.provider_price_id is None:
        raise ValidationFailed.field("plan", "the free plan needs no subscription")
    try:
        async with transaction(sessions) as session:
            if await current_subscription(session, principal.user_id) is not None:
                raise Conflict("You already have a subscription; cancel it first.")
            row = (
                await session.execute(
                    insert(subscriptions)
                    .values(
                        id=uuid.uuid4(),
                        user_id=principal.user_id,
                        plan=plan.name,
                        status=SUB_PENDING,
                    )
                    .returning(subscriptions)
                )
            ).one()
    except IntegrityError as exc:  # a concurrent subscribe of the same user won
        raise Conflict("You already have a subscription; cancel it first.") from exc
    try:
        customer_id = await _customer_id(sessions, gateway, principal)
        provider = await gateway.create_subscription(
            subscription_id=row.id,
            user_id=principal.user_id,
            customer_id=customer_id,
            plan=plan.name,
            price_id=plan.provider_price_id,
        )
    except (PaymentProviderError, PaymentProviderUnavailable):
        # Nothing to pay for: end our pending row so the user can try again.
        async with transaction(sessions) as session:
            await _set(session, row.id, status=SUB_CANCELED, ended_at=func.now())
        raise
    async with transaction(sessions) as session:
        row = (
            await session.execute(
                select(subscriptions).where(subscriptions.c.id == row.id).with_for_update()
            )
        ).one()
        if row.status == SUB_PENDING:  # a webhook may have overtaken this answer
            row = await _set(session, row.id, **_provider_values(provider))
            if provider.status in PROVIDER_ACTIVE:
                row = await activate(session, row, plans)
    return subscription_out(row, plans, client_secret=provider.client_secret)


async def cancel(
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    plans: PlanCatalog,
    *,
    user_id: uuid.UUID,
) -> None:
    """Cancel the caller's subscription at the end of its period (idempotent).

    A pending one (never paid) is canceled at once. 404 when there is none.
    """
    async with sessions() as session:
        row = await current_subscription(session, user_id)
    if row is None:
        raise NotFound("You have no subscription to cancel.")
    if row.status == SUB_ACTIVE and row.cancel_at_period_end:
        return
    if row.status == SUB_PENDING:
        if row.provider_subscription_id is not None:
            await gateway.cancel_subscription(row.provider_subscription_id)
        async with transaction(sessions) as session:
            locked = await current_subscription(session, user_id, lock=True)
            if locked is not None and locked.id == row.id:
                await end(session, locked, plans)
        return
    provider = await gateway.set_cancel_at_period_end(row.provider_subscription_id, True)
    async with transaction(sessions) as session:
        locked = await current_subscription(session, user_id, lock=True)
        if locked is not None and locked.id == row.id:
            await _set(session, row.id, **_provider_values(provider))


async def expire_subscriptions(
    session: AsyncSession, plans: PlanCatalog, *, now: datetime, grace: timedelta
) -> int:
    """End what is over by ``now``; returns how many ended. Safe to run any time, again.

    - active, set to cancel at period end, period over;
    - active, period over by more than ``grace`` with no renewal reported by Stripe;
    - pending for longer than a day (the first invoice was never paid).
    """
    over = (
        await session.execute(
            select(subscriptions)
            .where(
                or_(
                    and_(
                        subscriptions.c.status == SUB_ACTIVE,
                        subscriptions.c.current_period_end <= now,
                        or_(
                            subscriptions.c.cancel_at_period_end.is_(True),
                            subscriptions.c.current_period_end <= now - grace,
                        ),
                    ),
                    and_(
                        subscriptions.c.status == SUB_PENDING,
                        subscriptions.c.created_at <= now - PENDING_LIFETIME,
                    ),
                )
            )
            .with_for_update(skip_locked=True)
        )
    ).all()
    for row in over:
        await end(session, row, plans)
    return len(over)


# -- Stripe's word ------------------------------------------------------------------------


async def apply_provider_subscription(
    session: AsyncSession,
    obj: dict[str, Any],
    plans: PlanCatalog,
    *,
    event_created: datetime,
    deleted: bool,
) -> str:
    """Apply a ``customer.subscription.*`` event; returns what it did."""
    query = select(subscriptions).with_for_update()
    ours = (obj.get("metadata") or {}).get("subscription_id")
    try:
        query = query.where(subscriptions.c.id == uuid.UUID(str(ours)))
    except ValueError:
        query = query.where(subscriptions.c.provider_subscription_id == obj.get("id"))
    row = (await session.execute(query)).first()
    if row is None:
        return "ignored: unknown subscription"
    if row.status == SUB_CANCELED:
        return "ignored: the subscription has ended"
    if row.provider_event_at is not None and event_created < row.provider_event_at:
        return "ignored: older than the last applied event"
    provider = subscription_of(obj)
    row = await _set(session, row.id, provider_event_at=event_created, **_provider_values(provider))
    if deleted or provider.status in PROVIDER_ENDED:
        await end(session, row, plans)
        return "ended"
    if provider.status in PROVIDER_ACTIVE and row.status == SUB_PENDING:
        await activate(session, row, plans)
        return "activated"
    return "updated"
