"""The plans a user can be on: free (everyone without a subscription) and pro.

Prices and AI daily limits come from the settings, so operations can change them
without a release; ``ai_daily_limit`` is what subscription.activated.v1 /
subscription.canceled.v1 carry to the ai service (the seed's per-plan AI usage limit).
"""

from __future__ import annotations

from dataclasses import dataclass

from payments_service.settings import Settings

FREE = "free"
PRO = "pro"


@dataclass(frozen=True)
class Plan:
    name: str
    title: str
    price: int
    currency: str
    interval: str | None
    ai_daily_limit: int
    #: The Stripe Price a subscription to this plan is for (None: nothing to buy).
    provider_price_id: str | None


@dataclass(frozen=True)
class PlanCatalog:
    plans: tuple[Plan, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> PlanCatalog:
        return cls(
            (
                Plan(
                    name=FREE,
                    title="Free",
                    price=0,
                    currency=settings.pro_currency,
                    interval=None,
                    ai_daily_limit=settings.free_ai_daily_limit,
                    provider_price_id=None,
                ),
                Plan(
                    name=PRO,
                    title="Pro",
                    price=settings.pro_price,
                    currency=settings.pro_currency,
                    interval=settings.pro_interval,
                    ai_daily_limit=settings.pro_ai_daily_limit,
                    provider_price_id=settings.pro_stripe_price_id,
                ),
            )
        )

    def get(self, name: str) -> Plan | None:
        return next((p for p in self.plans if p.name == name), None)

    @property
    def free(self) -> Plan:
        plan = self.get(FREE)
        assert plan is not None
        return plan

    def limit_of(self, name: str) -> int:
        """The AI daily limit of a plan; a plan no longer offered counts as free."""
        plan = self.get(name)
        return (plan or self.free).ai_daily_limit
