"""The fake Stripe's objects and operations: what each endpoint does to the state.

Each operation takes the state, the decoded parameters and the path parameters, and
returns the object Stripe would answer, or raises :class:`StripeFailure`.
"""

from __future__ import annotations

import copy
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DECLINED_METHODS = frozenset({"pm_card_chargeDeclined", "pm_card_visa_chargeDeclined"})
_PERIODS = {"_daily": 86_400, "_weekly": 7 * 86_400, "_yearly": 365 * 86_400}
_MONTH = 30 * 86_400


class StripeFailure(Exception):
    """An error answer in Stripe's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": type_, "message": message}
        if code:
            self.body["code"] = code
        if param:
            self.body["param"] = param
        self.body.update(extra or {})


def _missing(kind: str, object_id: str) -> StripeFailure:
    return StripeFailure(404, f"No such {kind}: '{object_id}'", code="resource_missing", param="id")


def _int(params: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    raw = params.get(name)
    if raw is None:
        if required:
            raise StripeFailure(400, f"Missing required param: {name}.", param=name)
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise StripeFailure(400, f"Invalid integer: {raw}", param=name) from None


def _bool(raw: Any) -> bool:
    return str(raw).lower() == "true"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass
class FakeStripeState:
    """Everything the fake remembers (tests read it to count what was created)."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotent: dict[tuple[str, str], tuple[str, int, dict[str, Any]]] = field(default_factory=dict)
    #: (method, path) of every request served, in order.
    requests: list[tuple[str, str]] = field(default_factory=list)
    #: Status of new subscriptions: "active" (a working saved card), or "incomplete"
    #: (the first invoice awaits payment, as Stripe answers ``default_incomplete``).
    new_subscription_status: str = "active"

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects.values() if o.get("object") == kind]

    def get(self, kind: str, object_id: str) -> dict[str, Any]:
        found = self.objects.get(object_id)
        if found is None or found.get("object") != kind:
            raise _missing(kind, object_id)
        return found

    def reset(self) -> None:
        self.objects.clear()
        self.idempotent.clear()
        self.requests.clear()
        self.new_subscription_status = "active"


Operation = Callable[[FakeStripeState, dict[str, Any], dict[str, str]], dict[str, Any]]


# -- customers ----------------------------------------------------------------------------


def create_customer(state: FakeStripeState, params: dict[str, Any], _: dict) -> dict[str, Any]:
    customer = {
        "id": new_id("cus"),
        "object": "customer",
        "created": int(time.time()),
        "email": params.get("email"),
        "name": params.get("name"),
        "metadata": params.get("metadata") or {},
        "livemode": False,
    }
    state.objects[customer["id"]] = customer
    return customer


def retrieve_customer(state: FakeStripeState, _: dict, path: dict[str, str]) -> dict[str, Any]:
    return state.get("customer", path["id"])


# -- payment intents ----------------------------------------------------------------------


def create_payment_intent(
    state: FakeStripeState, params: dict[str, Any], _: dict
) -> dict[str, Any]:
    amount = _int(params, "amount")
    assert amount is not None
    if amount < 1:
        raise StripeFailure(400, "Amount must be at least 1.", param="amount")
    currency = str(params.get("currency") or "")
    if not re.fullmatch(r"[a-z]{3}", currency):
        raise StripeFailure(400, "Invalid currency.", param="currency")
    intent_id = new_id("pi")
    intent = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": 0,
        "currency": currency,
        "status": "requires_payment_method",
        "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
        "created": int(time.time()),
        "customer": params.get("customer"),
        "description": params.get("description"),
        "metadata": params.get("metadata") or {},
        "automatic_payment_methods": {
            "enabled": _bool((params.get("automatic_payment_methods") or {}).get("enabled"))
        },
        "payment_method": None,
        "payment_method_types": params.get("payment_method_types") or ["card"],
        "latest_charge": None,
        "last_payment_error": None,
        "canceled_at": None,
        "livemode": False,
    }
    state.objects[intent_id] = intent
    return intent


def retrieve_payment_intent(
    state: FakeStripeState, _: dict, path: dict[str, str]
) -> dict[str, Any]:
    return state.get("payment_intent", path["id"])


def update_payment_intent(
    state: FakeStripeState, params: dict[str, Any], path: dict[str, str]
) -> dict[str, Any]:
    intent = state.get("payment_intent", path["id"])
    if "metadata" in params:
        intent["metadata"] = {**intent["metadata"], **params["metadata"]}
    if "description" in params:
        intent["description"] = params["description"]
    return intent


def confirm_payment_intent(
    state: FakeStripeState, params: dict[str, Any], path: dict[str, str]
) -> dict[str, Any]:
    intent = state.get("payment_intent", path["id"])
    if intent["status"] in ("succeeded", "canceled"):
        raise StripeFailure(
            400,
            f"This PaymentIntent's status is {intent['status']}; it cannot be confirmed.",
            code="payment_intent_unexpected_state",
            extra={"payment_intent": copy.deepcopy(intent)},
        )
    method = params.get("payment_method") or intent["payment_method"] or "pm_card_visa"
    intent["payment_method"] = method
    if method in DECLINED_METHODS:
        intent["status"] = "requires_payment_method"
        intent["last_payment_error"] = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": "Your card was declined.",
        }
        raise StripeFailure(
            402,
            "Your card was declined.",
            type_="card_error",
            code="card_declined",
            extra={"decline_code": "generic_decline", "payment_intent": copy.deepcopy(intent)},
        )
    charge = {
        "id": new_id("ch"),
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": intent["amount"],
        "amount_refunded": 0,
        "currency": intent["currency"],
        "created": int(time.time()),
        "paid": True,
        "captured": True,
        "refunded": False,
        "status": "succeeded",
        "payment_intent": intent["id"],
        "payment_method": method,
        "customer": intent["customer"],
        "metadata": {},
        "refunds": {"object": "list", "data": [], "has_more": False},
        "livemode": False,
    }
    state.objects[charge["id"]] = charge
    intent.update(
        status="succeeded",
        amount_received=intent["amount"],
        latest_charge=charge["id"],
        last_payment_error=None,
    )
    return intent


def cancel_payment_intent(
    state: FakeStripeState, params: dict[str, Any], path: dict[str, str]
) -> dict[str, Any]:
    intent = state.get("payment_intent", path["id"])
    if intent["status"] == "succeeded":
        raise StripeFailure(
            400,
            "You cannot cancel this PaymentIntent because it has a status of succeeded.",
            code="payment_intent_unexpected_state",
        )
    intent.update(
        status="canceled",
        canceled_at=int(time.time()),
        cancellation_reason=params.get("cancellation_reason"),
    )
    return intent


def retrieve_charge(state: FakeStripeState, _: dict, path: dict[str, str]) -> dict[str, Any]:
    return state.get("charge", path["id"])


# -- refunds ------------------------------------------------------------------------------


def create_refund(state: FakeStripeState, params: dict[str, Any], _: dict) -> dict[str, Any]:
    if params.get("payment_intent"):
        intent = state.get("payment_intent", str(params["payment_intent"]))
        if not intent["latest_charge"]:
            raise StripeFailure(
                400,
                "This PaymentIntent does not have a successful charge to refund.",
                code="charge_not_refundable",
            )
        charge = state.get("charge", intent["latest_charge"])
    elif params.get("charge"):
        charge = state.get("charge", str(params["charge"]))
    else:
        raise StripeFailure(400, "One of `charge` or `payment_intent` is required.")
    remaining = charge["amount"] - charge["amount_refunded"]
    if remaining <= 0:
        raise StripeFailure(
            400,
            f"Charge {charge['id']} has already been refunded.",
            code="charge_already_refunded",
        )
    amount = _int(params, "amount", required=False) or remaining
    if amount > remaining:
        raise StripeFailure(
            400,
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
            param="amount",
        )
    refund = {
        "id": new_id("re"),
        "object": "refund",
        "amount": amount,
        "charge": charge["id"],
        "payment_intent": charge["payment_intent"],
        "currency": charge["currency"],
        "created": int(time.time()),
        "status": "succeeded",
        "reason": params.get("reason"),
        "metadata": params.get("metadata") or {},
    }
    state.objects[refund["id"]] = refund
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
    charge["refunds"]["data"].insert(0, refund)
    return refund


def retrieve_refund(state: FakeStripeState, _: dict, path: dict[str, str]) -> dict[str, Any]:
    return state.get("refund", path["id"])


# -- subscriptions ------------------------------------------------------------------------


def create_subscription(state: FakeStripeState, params: dict[str, Any], _: dict) -> dict[str, Any]:
    customer_id = str(params.get("customer") or "")
    state.get("customer", customer_id)
    items = params.get("items") or []
    if not items or not isinstance(items, list) or not items[0].get("price"):
        raise StripeFailure(400, "Missing required param: items[0][price].", param="items")
    price = str(items[0]["price"])
    now = int(time.time())
    period = next((s for suffix, s in _PERIODS.items() if price.endswith(suffix)), _MONTH)
    subscription_id = new_id("sub")
    subscription = {
        "id": subscription_id,
        "object": "subscription",
        "customer": customer_id,
        "status": state.new_subscription_status,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "created": now,
        "start_date": now,
        "metadata": params.get("metadata") or {},
        "latest_invoice": None,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": new_id("si"),
                    "object": "subscription_item",
                    "price": {"id": price, "object": "price"},
                    "quantity": 1,
                    "current_period_start": now,
                    "current_period_end": now + period,
                }
            ],
            "has_more": False,
        },
        "livemode": False,
    }
    state.objects[subscription_id] = subscription
    return subscription


def retrieve_subscription(state: FakeStripeState, _: dict, path: dict[str, str]) -> dict[str, Any]:
    return state.get("subscription", path["id"])


def update_subscription(
    state: FakeStripeState, params: dict[str, Any], path: dict[str, str]
) -> dict[str, Any]:
    subscription = state.get("subscription", path["id"])
    if subscription["status"] == "canceled":
        raise StripeFailure(
            400,
            "A canceled subscription can only update its cancellation_details and metadata.",
        )
    if "cancel_at_period_end" in params:
        subscription["cancel_at_period_end"] = _bool(params["cancel_at_period_end"])
        subscription["canceled_at"] = (
            int(time.time()) if subscription["cancel_at_period_end"] else None
        )
    if "metadata" in params:
        subscription["metadata"] = {**subscription["metadata"], **params["metadata"]}
    return subscription


def cancel_subscription(state: FakeStripeState, _: dict, path: dict[str, str]) -> dict[str, Any]:
    subscription = state.get("subscription", path["id"])
    if subscription["status"] == "canceled":
        raise _missing("subscription", path["id"])
    now = int(time.time())
    subscription.update(status="canceled", canceled_at=now, ended_at=now)
    return subscription
