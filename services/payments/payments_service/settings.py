"""Configuration of the payments service (environment variables prefixed ``PAYMENTS_``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from unpuzzle_common.config import ServiceSettings

DEV_STRIPE_API_KEY = "sk_test_unpuzzle_dev_only"
DEV_STRIPE_WEBHOOK_SECRET = "whsec_unpuzzle_dev_only"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMENTS_", extra="ignore")
    dev_secrets: ClassVar[dict[str, str]] = {
        "stripe_api_key": DEV_STRIPE_API_KEY,
        "stripe_webhook_secret": DEV_STRIPE_WEBHOOK_SECRET,
    }

    service_name: str = "payments"
    host: str = "127.0.0.1"
    port: int = 8105

    #: Secret API key of the Stripe account (``sk_live_…`` / ``sk_test_…``).
    stripe_api_key: SecretStr = SecretStr(DEV_STRIPE_API_KEY)
    #: Base URL of the Stripe API; unset means Stripe itself. Development points it at
    #: the local fake (``python -m payments_service fake-stripe``).
    stripe_api_base: str | None = None
    #: Signing secret of the webhook endpoint (``whsec_…``).
    stripe_webhook_secret: SecretStr = SecretStr(DEV_STRIPE_WEBHOOK_SECRET)
    #: Oldest webhook signature timestamp accepted, in seconds (Stripe's default is 300).
    stripe_webhook_tolerance: int = Field(default=300, ge=1)
    #: Seconds one call to Stripe may take.
    stripe_timeout: float = Field(default=10.0, gt=0)
    #: Retries of a call to Stripe that failed on the network (each with the same
    #: idempotency key, so a retry never charges twice).
    stripe_max_network_retries: int = Field(default=1, ge=0, le=5)

    #: Days after a payment succeeded during which its buyer may refund it alone.
    refund_window_days: int = Field(default=14, ge=0)

    #: AI requests a day without a subscription (the free plan); the ai service's
    #: ``AI_FREE_DAILY_LIMIT`` should say the same.
    free_ai_daily_limit: int = Field(default=20, ge=0)
    #: The pro plan: AI requests a day, its price per period and the Stripe Price id.
    pro_ai_daily_limit: int = Field(default=200, ge=0)
    pro_price: int = Field(default=1900, ge=0)
    pro_currency: str = Field(default="usd", pattern=r"^[a-z]{3}$")
    pro_interval: str = Field(default="month", pattern=r"^(day|week|month|year)$")
    pro_stripe_price_id: str = "price_unpuzzle_pro_monthly"
    #: Days an active subscription outlives its period end without Stripe reporting a
    #: renewal before ``expire-subscriptions`` ends it.
    subscription_grace_days: int = Field(default=3, ge=0)

    #: Where ``python -m payments_service confirm`` delivers its signed webhook (the
    #: gateway's public webhook URL in development).
    webhook_url: str = "http://127.0.0.1:8080/api/v1/payments/webhooks/stripe"

    #: Deliveries of a consumed event before it is dead-lettered.
    consumer_max_deliver: int = 5
