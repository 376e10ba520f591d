"""What the routers take from the running service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payments_service.plans import PlanCatalog
from payments_service.provider import StripeGateway
from payments_service.settings import Settings


@dataclass
class PaymentsContext:
    """Everything the routes need, built once in the app's lifespan."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    gateway: StripeGateway
    plans: PlanCatalog

    @property
    def refund_window(self) -> timedelta:
        return timedelta(days=self.settings.refund_window_days)


async def payments_context(request: Request) -> PaymentsContext:
    return request.app.state.payments
