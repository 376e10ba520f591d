"""Fixtures of the auth service tests: a migrated ``auth`` schema, the app in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from auth_service.main import create_app
from auth_service.settings import Settings
from unpuzzle_common.testing import (
    NATS_URL,
    REDIS_URL,
    fresh_service_database,
    truncate_schema,
    unique_prefix,
)

SERVICE_DIR = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def auth_database_url() -> str:
    return fresh_service_database("auth", SERVICE_DIR)


@pytest.fixture
def settings(auth_database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=auth_database_url,
        redis_url=REDIS_URL,
        nats_url=NATS_URL,
        events_prefix=unique_prefix(),
        mail_dir=tmp_path / "mail",
        # Cheap hashing keeps the suite fast; production cost is measured in bench/.
        argon2_time_cost=1,
        argon2_memory_cost=8192,
        argon2_parallelism=1,
        key_publish_lead=0,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[object]:
    truncate_schema("auth")
    redis = Redis.from_url(settings.redis_url)
    await redis.flushdb()
    await redis.aclose()
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as c:
        yield c


@pytest.fixture
def signup(client: httpx.AsyncClient):
    """Create an account through the API; returns the signup answer (user + tokens)."""

    async def make(email: str = "ada@example.com", **extra) -> dict:
        body = {"email": email, "password": PASSWORD, "full_name": "Ada Lovelace", **extra}
        response = await client.post("/api/v1/auth/signup", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    return make


def bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture
def auth_header():
    return bearer


@pytest.fixture
def signin(client: httpx.AsyncClient):
    async def call(
        email: str = "ada@example.com", password: str = PASSWORD, **headers
    ) -> httpx.Response:
        return await client.post(
            "/api/v1/auth/signin", json={"email": email, "password": password}, headers=headers
        )

    return call


@pytest.fixture
def admin(app, signin):
    """Create an admin account directly (as `create-admin` does) and sign it in."""
    from auth_service.users import ensure_admin
    from unpuzzle_common.db import transaction

    async def make(email: str = "root@example.com") -> dict:
        ctx = app.state.auth
        async with transaction(ctx.sessions) as session:
            await ensure_admin(
                session, ctx.hashing, email=email, password=PASSWORD, full_name="Root"
            )
        response = await signin(email)
        assert response.status_code == 200, response.text
        return response.json()

    return make
