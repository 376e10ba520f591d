"""Request and response bodies of the payments API.

Money is ``amount``/``price`` in the currency's minor units (an integer) with a
lower-case ISO 4217 ``currency``, as Stripe writes it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PaymentStatus = Literal["pending", "succeeded", "failed", "refunded"]
SubscriptionStatus = Literal["pending", "active", "canceled"]


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so typos are reported, not ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# -- requests -----------------------------------------------------------------------------


class IntentCreate(Strict):
    course_id: uuid.UUID


class SubscriptionCreate(Strict):
    plan: str = Field(min_length=1, max_length=32, description="A plan name from GET /plans.")


# -- responses ----------------------------------------------------------------------------


class IntentOut(BaseModel):
    """What a client needs to pay with Stripe.js: the PaymentIntent's client secret."""

    payment_id: uuid.UUID
    course_id: uuid.UUID
    provider_payment_id: str
    client_secret: str | None
    amount: int
    currency: str
    status: PaymentStatus


class PaymentOut(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    course_id: uuid.UUID
    amount: int
    currency: str
    status: PaymentStatus
    provider: str
    provider_payment_id: str | None
    amount_refunded: int
    failure_reason: str | None
    created_at: datetime
    succeeded_at: datetime | None
    failed_at: datetime | None
    refunded_at: datetime | None
    #: Until when the buyer may refund it alone (succeeded payments only).
    refundable_until: datetime | None


class PlanOut(BaseModel):
    name: str
    title: str
    price: int
    currency: str
    #: Billing period of a paid plan (``month``, ``year``…); null for the free plan.
    interval: str | None
    ai_daily_limit: int


class PlansOut(BaseModel):
    items: list[PlanOut]


class SubscriptionOut(BaseModel):
    """The caller's plan: a subscription, or the free plan when there is none (``id`` null)."""

    id: uuid.UUID | None
    plan: str
    status: SubscriptionStatus
    ai_daily_limit: int
    current_period_end: datetime | None
    cancel_at_period_end: bool
    provider_subscription_id: str | None = None
    #: For a pending subscription with real Stripe: the secret Stripe.js confirms the
    #: first invoice's payment with.
    client_secret: str | None = None
    created_at: datetime | None = None


class WebhookReceipt(BaseModel):
    received: bool = True
    #: True when this event id had been applied before (the delivery changed nothing).
    duplicate: bool
    type: str
