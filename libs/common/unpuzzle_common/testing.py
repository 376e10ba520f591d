"""Test support shared by every service's tests.

Tests run against real PostgreSQL, NATS JetStream and Redis, found through these
environment variables (localhost defaults match the project's machines and CI):

- ``UNPUZZLE_TEST_ADMIN_URL``  administrative PostgreSQL URL (default postgres@127.0.0.1)
- ``UNPUZZLE_TEST_DATABASE``   database the tests create and use (default unpuzzle_test)
- ``UNPUZZLE_TEST_NATS_URL``   NATS with JetStream (default nats://127.0.0.1:4222)
- ``UNPUZZLE_TEST_REDIS_URL``  Redis (default redis://127.0.0.1:6379/15)
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import psycopg
from cryptography.hazmat.primitives.asymmetric import ec
from nats.js import JetStreamContext
from psycopg import sql
from sqlalchemy import make_url

from unpuzzle_common.auth import TokenVerifier, VerificationKey
from unpuzzle_common.db import _PROVISION_LOCK, libpq_url, provision_service, role_name
from unpuzzle_common.migrations import upgrade_to_head

ADMIN_URL = os.environ.get(
    "UNPUZZLE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DATABASE = os.environ.get("UNPUZZLE_TEST_DATABASE", "unpuzzle_test")
NATS_URL = os.environ.get("UNPUZZLE_TEST_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("UNPUZZLE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TEST_PASSWORD = "test-password"


def database_admin_url(database: str = DATABASE) -> str:
    """Administrative libpq URL pointing at the test database."""
    return (
        make_url(libpq_url(ADMIN_URL)).set(database=database).render_as_string(hide_password=False)
    )


def drop_schema(service: str, database: str = DATABASE) -> None:
    """Remove a service's schema (and everything in it) from the test database."""
    try:
        conn = psycopg.connect(database_admin_url(database), autocommit=True)
    except psycopg.OperationalError:
        return  # the database does not exist yet: nothing to drop
    with conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(service)))


def drop_service_schema_and_role(service: str, database: str = DATABASE) -> None:
    """Remove a service's schema and its role (what a test provisioned, undone).

    Holds the provisioning lock so it cannot collide with a concurrent
    :func:`~unpuzzle_common.db.provision_service` on the same catalog rows.
    """
    role = role_name(service)
    with psycopg.connect(libpq_url(ADMIN_URL), autocommit=True) as admin:
        admin.execute("SELECT pg_advisory_lock(%s)", (_PROVISION_LOCK,))
        drop_schema(service, database)
        if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            return
        with psycopg.connect(database_admin_url(database), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def fresh_service_database(service: str, service_dir: Path | None = None) -> str:
    """Provision a clean schema for ``service``, run its migrations, return its URL."""
    drop_schema(service)
    url = provision_service(ADMIN_URL, service=service, password=TEST_PASSWORD, database=DATABASE)
    if service_dir is not None:
        upgrade_to_head(service_dir, url)
    return url


def truncate_schema(service: str, *, keep: tuple[str, ...] = ("alembic_version",)) -> None:
    """Empty every table of a service's schema between tests."""
    with psycopg.connect(database_admin_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (service,)
        ).fetchall()
        tables = [r[0] for r in rows if r[0] not in keep]
        if tables:
            conn.execute(
                sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                    sql.SQL(", ").join(sql.Identifier(service, t) for t in tables)
                )
            )


def unique_prefix() -> str:
    """A random event-subject prefix so concurrent test runs never share streams."""
    return "t" + uuid.uuid4().hex[:10]


async def delete_streams_with_prefix(js, prefix: str) -> None:
    """Remove the JetStream streams a test created under ``prefix``."""
    for info in await js.streams_info():
        if info.config.name.lower().startswith(prefix.lower()):
            await js.delete_stream(info.config.name)


@dataclass
class Caller:
    """A user as service tests see it: id, roles, ready-made ``Authorization`` headers."""

    id: uuid.UUID
    roles: tuple[str, ...]
    headers: dict[str, str] = field(default_factory=dict)


class TokenMint:
    """Signs access tokens the way the auth service does (ES256, ``kid``, standard claims).

    Service tests use it instead of a running auth service: ``verifier()`` is a real
    :class:`~unpuzzle_common.auth.TokenVerifier` whose key lookup knows this mint's key.
    """

    def __init__(
        self,
        kid: str = "test-key",
        *,
        issuer: str = "unpuzzle-auth",
        audience: str = "unpuzzle-api",
    ) -> None:
        self.kid, self.issuer, self.audience = kid, issuer, audience
        self._private = ec.generate_private_key(ec.SECP256R1())
        self._public = VerificationKey(kid=kid, alg="ES256", key=self._private.public_key())

    async def lookup(self, kid: str) -> VerificationKey | None:
        """Key lookup for a :class:`TokenVerifier`: this mint's key, or None."""
        return self._public if kid == self.kid else None

    def verifier(self) -> TokenVerifier:
        """A real token verifier that trusts this mint."""
        return TokenVerifier(self.lookup, issuer=self.issuer, audience=self.audience)

    def token(self, user_id: uuid.UUID, roles: tuple[str, ...], **overrides: object) -> str:
        """An access token for ``user_id`` with ``roles``; ``overrides`` replace claims."""
        now = datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "email": f"{user_id.hex[:8]}@example.com",
            "roles": list(roles),
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + timedelta(minutes=15),
            "jti": uuid.uuid4().hex,
            **overrides,
        }
        return jwt.encode(claims, self._private, algorithm="ES256", headers={"kid": self.kid})

    def caller(self, *roles: str, user_id: uuid.UUID | None = None) -> Caller:
        """A new user (or ``user_id``) with ``roles`` (default student) and its token."""
        roles = roles or ("student",)
        user_id = user_id or uuid.uuid4()
        return Caller(user_id, roles, {"Authorization": f"Bearer {self.token(user_id, roles)}"})


async def eventually(check, *, timeout: float = 10.0, interval: float = 0.05):  # noqa: ASYNC109 - a polling deadline, not a cancel scope
    """Poll the async ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)


@asynccontextmanager
async def jetstream_for_tests(prefix: str, name: str) -> AsyncIterator[JetStreamContext]:
    """JetStream on the test NATS; the streams under ``prefix`` are removed afterwards."""
    from unpuzzle_common.events.bus import connect, jetstream_context

    nc = await asyncio.wait_for(connect(NATS_URL, name), 5)
    context = jetstream_context(nc)
    try:
        yield context
    finally:
        await delete_streams_with_prefix(context, prefix)
        await nc.close()
