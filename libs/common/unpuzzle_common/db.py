"""Database access: one async engine per service, each service in its own schema.

A service connects as its own PostgreSQL role (``unpuzzle_<service>``) that owns its
schema and has no rights anywhere else. :func:`provision_service` creates the
database, the role and the schema with an administrative connection; it is what
``make up``, the tests and the Kubernetes migration Job run before migrations.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import sql
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Advisory lock key serialising provision_service across processes ("unpuzzle" in hex).
_PROVISION_LOCK = 0x756E70757A7A6C65


def role_name(service: str) -> str:
    """The PostgreSQL role a service connects as."""
    return f"unpuzzle_{service}"


def create_engine(url: str, *, pool_size: int = 10, application_name: str = "") -> AsyncEngine:
    """An async SQLAlchemy engine (psycopg 3) with pre-ping and a bounded pool."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"application_name": application_name} if application_name else {},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (responses are built after it)."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error."""
    async with sessions() as session, session.begin():
        yield session


async def ping(engine: AsyncEngine) -> None:
    """Raise if the database does not answer."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def libpq_url(url: str) -> str:
    """Turn a SQLAlchemy URL (``postgresql+psycopg://``) into a plain libpq one."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def service_url(admin_url: str, *, service: str, password: str, database: str) -> str:
    """The SQLAlchemy URL a service uses, derived from the administrative URL's host."""
    admin = make_url(admin_url)
    return admin.set(
        drivername="postgresql+psycopg",
        username=role_name(service),
        password=password,
        database=database,
    ).render_as_string(hide_password=False)


def _check_identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"not a safe SQL identifier: {value!r}")
    return value


def provision_service(admin_url: str, *, service: str, password: str, database: str) -> str:
    """Create (idempotently) the database, the service's role and its schema.

    The role owns the schema named after the service, its ``search_path`` is that
    schema, and it has no rights on ``public`` or on other services' schemas.
    Returns the SQLAlchemy URL the service should use.
    """
    schema = _check_identifier(service)
    role = _check_identifier(role_name(service))
    _check_identifier(database)
    admin = make_url(libpq_url(admin_url))
    with psycopg.connect(
        admin.render_as_string(hide_password=False), autocommit=True
    ) as admin_conn:
        # Services are provisioned concurrently (one migration Job each): their GRANTs and
        # REVOKEs on the same database and schema rows otherwise fail with "tuple
        # concurrently updated". The lock is released when this connection closes.
        admin_conn.execute("SELECT pg_advisory_lock(%s)", (_PROVISION_LOCK,))
        _provision_database_and_role(admin_conn, database, role, password)
        db_url = admin.set(database=database).render_as_string(hide_password=False)
        with psycopg.connect(db_url, autocommit=True) as conn:
            _provision_schema(conn, database, schema, role)
    return service_url(admin_url, service=service, password=password, database=database)


def _provision_database_and_role(
    conn: psycopg.Connection, database: str, role: str, password: str
) -> None:
    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    if not exists:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    role_exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    verb = "ALTER" if role_exists else "CREATE"
    conn.execute(
        sql.SQL(verb + " ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE").format(
            sql.Identifier(role), sql.Literal(password)
        )
    )


def _provision_schema(conn: psycopg.Connection, database: str, schema: str, role: str) -> None:
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
    conn.execute(sql.SQL("REVOKE ALL ON SCHEMA public FROM PUBLIC"))
    conn.execute(
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
            sql.Identifier(database), sql.Identifier(role)
        )
    )
    conn.execute(
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
            sql.Identifier(schema), sql.Identifier(role)
        )
    )
    conn.execute(
        sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path = {}").format(
            sql.Identifier(role), sql.Identifier(database), sql.Identifier(schema)
        )
    )
