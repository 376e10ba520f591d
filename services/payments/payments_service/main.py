"""The payments service's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from payments_service.api import payments, subscriptions, webhooks
from payments_service.api.deps import PaymentsContext
from payments_service.plans import PlanCatalog
from payments_service.provider import StripeGateway
from payments_service.settings import Settings
from unpuzzle_common.app import ServiceRuntime, create_service_app
from unpuzzle_common.auth import JWKSKeySource, TokenVerifier

VERSION = "1.0.0"


def create_app(
    settings: Settings | None = None, *, token_verifier: TokenVerifier | None = None
) -> FastAPI:
    """The app; ``token_verifier`` replaces the JWKS-backed one (tests mint their own keys)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ServiceRuntime.open(settings) as runtime:
            verifier = token_verifier
            if verifier is None:
                keys = JWKSKeySource(settings.jwks_url)
                runtime.closers.append(keys.aclose)
                verifier = TokenVerifier(
                    keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience
                )
            gateway = StripeGateway(settings)
            runtime.closers.append(gateway.aclose)
            app.state.runtime = runtime
            app.state.token_verifier = verifier
            app.state.payments = PaymentsContext(
                settings=settings,
                sessions=runtime.sessions,
                gateway=gateway,
                plans=PlanCatalog.from_settings(settings),
            )
            yield

    app = create_service_app(
        settings,
        title="Unpuzzle payments",
        version=VERSION,
        description="Course purchases with Stripe, refunds, plans and subscriptions.",
        lifespan=lifespan,
    )
    # Fixed paths (/plans, /subscriptions, /webhooks/stripe) before /{payment_id}.
    for module in (subscriptions, webhooks, payments):
        app.include_router(module.router)
    return app
