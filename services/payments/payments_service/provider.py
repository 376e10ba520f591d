"""The adapter to Stripe: the few calls this service makes, through the official SDK.

Every call that creates something carries an idempotency key derived from our own
ids (the payment id for its PaymentIntent, ``refund-<payment id>`` for its refund,
``customer-<user id>``, ``subscription-<subscription id>``), so a retry — ours, the
SDK's network retry, or a client's — never creates a second object at Stripe.

``stripe_api_base`` points the SDK at another server (the local fake in development
and tests); the HTTP client is httpx, asynchronous, with a timeout on every call.
Stripe's errors become problem+json: 503 when Stripe cannot be reached, 502 when it
answered with an error.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe

from payments_service.settings import Settings
from unpuzzle_common.errors import Problem, ServiceUnavailable

log = logging.getLogger(__name__)


class PaymentProviderError(Problem):
    """Stripe answered a call with an error."""

    status, slug = 502, "payment-provider-error"


class PaymentProviderUnavailable(ServiceUnavailable):
    """Stripe could not be reached (or did not answer in time); retrying is safe."""

    slug = "payment-provider-unavailable"


@dataclass(frozen=True)
class ProviderIntent:
    id: str
    status: str
    client_secret: str | None
    amount: int
    currency: str


@dataclass(frozen=True)
class ProviderRefund:
    id: str
    status: str
    amount: int


@dataclass(frozen=True)
class ProviderSubscription:
    id: str
    status: str
    current_period_end: datetime | None
    cancel_at_period_end: bool
    #: The first invoice's payment secret of an incomplete subscription, when expanded.
    client_secret: str | None = None


def from_timestamp(value: Any) -> datetime | None:
    """A Stripe unix timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(int(value), UTC) if value is not None else None


def intent_of(obj: dict[str, Any]) -> ProviderIntent:
    return ProviderIntent(
        id=obj["id"],
        status=obj["status"],
        client_secret=obj.get("client_secret"),
        amount=int(obj.get("amount") or 0),
        currency=str(obj.get("currency") or ""),
    )


def subscription_of(obj: dict[str, Any]) -> ProviderSubscription:
    """Read a Stripe Subscription; the period end moved onto its items in API 2025-03."""
    period_end = obj.get("current_period_end")
    if period_end is None:
        items = (obj.get("items") or {}).get("data") or []
        period_end = items[0].get("current_period_end") if items else None
    invoice = obj.get("latest_invoice")
    secret = None
    if isinstance(invoice, dict):
        secret = (invoice.get("confirmation_secret") or {}).get("client_secret")
    return ProviderSubscription(
        id=obj["id"],
        status=obj["status"],
        current_period_end=from_timestamp(period_end),
        cancel_at_period_end=bool(obj.get("cancel_at_period_end")),
        client_secret=secret,
    )


class StripeGateway:
    """Stripe through one :class:`stripe.StripeClient` for the life of the process."""

    def __init__(self, settings: Settings) -> None:
        self._http = stripe.HTTPXClient(timeout=settings.stripe_timeout)
        base = {"api": settings.stripe_api_base.rstrip("/")} if settings.stripe_api_base else None
        self._client = stripe.StripeClient(
            settings.stripe_api_key.get_secret_value(),
            base_addresses=base,  # type: ignore[arg-type]
            http_client=self._http,
            max_network_retries=settings.stripe_max_network_retries,
        )

    async def aclose(self) -> None:
        await self._http.close_async()

    async def _call(self, what: str, coroutine: Any) -> dict[str, Any]:
        """Await one SDK call; its answer as plain JSON-like dicts."""
        try:
            return (await coroutine).to_dict(for_json=True)
        except stripe.APIConnectionError as exc:
            log.warning("Stripe unreachable during %s: %s", what, exc)
            raise PaymentProviderUnavailable(
                "The payment provider could not be reached; retry in a moment.",
                headers={"Retry-After": "5"},
            ) from exc
        except stripe.StripeError as exc:
            log.warning("Stripe refused %s: %s (%s)", what, exc.user_message, exc.code)
            raise PaymentProviderError(
                f"The payment provider refused the request: {exc.user_message or exc.code}",
                extra={"provider_code": exc.code} if exc.code else None,
            ) from exc

    # -- course purchases -----------------------------------------------------------------

    async def create_payment_intent(
        self,
        *,
        payment_id: uuid.UUID,
        user_id: uuid.UUID,
        course_id: uuid.UUID,
        amount: int,
        currency: str,
        description: str,
    ) -> ProviderIntent:
        intent = await self._call(
            "PaymentIntent create",
            self._client.v1.payment_intents.create_async(
                params={
                    "amount": amount,
                    "currency": currency,
                    "description": description,
                    "automatic_payment_methods": {"enabled": True},
                    "metadata": {
                        "payment_id": str(payment_id),
                        "user_id": str(user_id),
                        "course_id": str(course_id),
                    },
                },
                options={"idempotency_key": str(payment_id)},
            ),
        )
        return intent_of(intent)

    async def retrieve_payment_intent(self, provider_payment_id: str) -> ProviderIntent:
        return intent_of(await self.payment_intent_document(provider_payment_id))

    async def payment_intent_document(self, provider_payment_id: str) -> dict[str, Any]:
        """The PaymentIntent as Stripe's JSON (what a webhook event carries)."""
        return await self._call(
            "PaymentIntent retrieve",
            self._client.v1.payment_intents.retrieve_async(provider_payment_id),
        )

    async def confirm_payment_intent(
        self, provider_payment_id: str, *, payment_method: str = "pm_card_visa"
    ) -> dict[str, Any]:
        """Confirm with a test card (the dev helper); returns the PaymentIntent as JSON."""
        return await self._call(
            "PaymentIntent confirm",
            self._client.v1.payment_intents.confirm_async(
                provider_payment_id,
                params={"payment_method": payment_method, "return_url": "https://unpuzzle.test"},
            ),
        )

    async def refund_payment(
        self, *, payment_id: uuid.UUID, provider_payment_id: str
    ) -> ProviderRefund:
        refund = await self._call(
            "Refund create",
            self._client.v1.refunds.create_async(
                params={
                    "payment_intent": provider_payment_id,
                    "metadata": {"payment_id": str(payment_id)},
                },
                options={"idempotency_key": f"refund-{payment_id}"},
            ),
        )
        return ProviderRefund(
            id=refund["id"], status=refund["status"], amount=int(refund.get("amount") or 0)
        )

    # -- subscriptions --------------------------------------------------------------------

    async def create_customer(self, *, user_id: uuid.UUID, email: str) -> str:
        customer = await self._call(
            "Customer create",
            self._client.v1.customers.create_async(
                params={"email": email, "metadata": {"user_id": str(user_id)}},
                options={"idempotency_key": f"customer-{user_id}"},
            ),
        )
        return str(customer["id"])

    async def create_subscription(
        self,
        *,
        subscription_id: uuid.UUID,
        user_id: uuid.UUID,
        customer_id: str,
        plan: str,
        price_id: str,
    ) -> ProviderSubscription:
        # default_incomplete: Stripe creates it at once and activates it when the first
        # invoice is paid (reported by customer.subscription.updated).
        subscription = await self._call(
            "Subscription create",
            self._client.v1.subscriptions.create_async(
                params={
                    "customer": customer_id,
                    "items": [{"price": price_id}],
                    "payment_behavior": "default_incomplete",
                    "expand": ["latest_invoice.confirmation_secret"],
                    "metadata": {
                        "subscription_id": str(subscription_id),
                        "user_id": str(user_id),
                        "plan": plan,
                    },
                },
                options={"idempotency_key": f"subscription-{subscription_id}"},
            ),
        )
        return subscription_of(subscription)

    async def set_cancel_at_period_end(
        self, provider_subscription_id: str, cancel: bool
    ) -> ProviderSubscription:
        subscription = await self._call(
            "Subscription update",
            self._client.v1.subscriptions.update_async(
                provider_subscription_id, params={"cancel_at_period_end": cancel}
            ),
        )
        return subscription_of(subscription)

    async def cancel_subscription(self, provider_subscription_id: str) -> ProviderSubscription:
        subscription = await self._call(
            "Subscription cancel",
            self._client.v1.subscriptions.cancel_async(provider_subscription_id),
        )
        return subscription_of(subscription)
