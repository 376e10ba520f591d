"""The auth service's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from auth_service.api import credentials, jwks, passwords, profile, sessions
from auth_service.api.deps import AuthContext
from auth_service.mailer import FolderMailer, Mailer, SmtpMailer
from auth_service.passwords import PasswordHashing
from auth_service.settings import Settings
from auth_service.signing_keys import KeyRing, ensure_signing_key
from auth_service.throttle import SigninThrottle
from auth_service.tokens import TokenIssuer
from unpuzzle_common.app import ServiceRuntime, create_service_app
from unpuzzle_common.auth import TokenVerifier
from unpuzzle_common.db import transaction

VERSION = "1.0.0"


def make_mailer(settings: Settings) -> Mailer:
    if settings.smtp_host:
        return SmtpMailer(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.mail_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )
    return FolderMailer(settings.mail_dir, settings.mail_from)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ServiceRuntime.open(settings) as runtime:
            async with transaction(runtime.sessions) as session:
                await ensure_signing_key(session, settings.key_encryption_secret)
            keys = KeyRing(
                runtime.sessions,
                secret=settings.key_encryption_secret,
                token_ttl=settings.access_token_ttl,
            )
            app.state.runtime = runtime
            app.state.token_verifier = TokenVerifier(
                keys.verification_key, issuer=settings.jwt_issuer, audience=settings.jwt_audience
            )
            app.state.auth = AuthContext(
                settings=settings,
                sessions=runtime.sessions,
                redis=runtime.redis,
                hashing=PasswordHashing(
                    time_cost=settings.argon2_time_cost,
                    memory_cost=settings.argon2_memory_cost,
                    parallelism=settings.argon2_parallelism,
                ),
                keys=keys,
                issuer=TokenIssuer(
                    keys,
                    issuer=settings.jwt_issuer,
                    audience=settings.jwt_audience,
                    access_ttl=settings.access_token_ttl,
                    refresh_ttl=settings.refresh_token_ttl,
                ),
                throttle=SigninThrottle(
                    runtime.redis,
                    per_account=settings.signin_max_failures_per_account,
                    per_address=settings.signin_max_failures_per_address,
                    window=settings.signin_failure_window,
                ),
                mailer=make_mailer(settings),
            )
            yield

    app = create_service_app(
        settings,
        title="Unpuzzle auth",
        version=VERSION,
        description="Accounts, credentials, roles, sessions and the keys that sign access tokens.",
        lifespan=lifespan,
    )
    for module in (credentials, sessions, passwords, profile, jwks):
        app.include_router(module.router)
    return app
