"""provision_service: one role and one schema per service, nothing more.

Two services are provisioned in the test database; each test connects as their
roles and checks what they may and may not touch.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
import pytest
from sqlalchemy import text

from unpuzzle_common.db import (
    create_engine,
    libpq_url,
    ping,
    provision_service,
    role_name,
    session_factory,
    transaction,
)
from unpuzzle_common.testing import ADMIN_URL, DATABASE, TEST_PASSWORD, database_admin_url


@dataclass
class Provisioned:
    service: str
    url: str

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(libpq_url(self.url), autocommit=True)


@pytest.fixture
def provision(drop_service, unique_name) -> Callable[[str], Provisioned]:
    """Provision a uniquely named service in the test database (dropped afterwards)."""

    def make(stem: str) -> Provisioned:
        service = drop_service(unique_name(stem))
        url = provision_service(
            ADMIN_URL, service=service, password=TEST_PASSWORD, database=DATABASE
        )
        return Provisioned(service, url)

    return make


@pytest.fixture
def svc_a(provision) -> Provisioned:
    return provision("svc_a")


@pytest.fixture
def svc_b(provision) -> Provisioned:
    return provision("svc_b")


def test_provisioning_twice_keeps_the_schema_and_its_data(svc_a: Provisioned) -> None:
    with svc_a.connect() as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY)")
        conn.execute("INSERT INTO notes VALUES (1)")

    url = provision_service(
        ADMIN_URL, service=svc_a.service, password=TEST_PASSWORD, database=DATABASE
    )

    assert url == svc_a.url
    with svc_a.connect() as conn:
        assert conn.execute("SELECT id FROM notes").fetchall() == [(1,)]


def test_service_url_connects_as_the_service_role(svc_a: Provisioned) -> None:
    with svc_a.connect() as conn:
        user, database = conn.execute("SELECT current_user, current_database()").fetchone()

    assert (user, database) == (role_name(svc_a.service), DATABASE)


def test_search_path_is_the_services_own_schema(svc_a: Provisioned) -> None:
    with svc_a.connect() as conn:
        conn.execute("CREATE TABLE search_path_probe (id int)")
        schema = conn.execute(
            "SELECT schemaname FROM pg_tables WHERE tablename = 'search_path_probe'"
        ).fetchone()
        current = conn.execute("SELECT current_schema()").fetchone()

    assert schema == (svc_a.service,)
    assert current == (svc_a.service,)


def test_role_creates_and_uses_tables_in_its_own_schema(svc_a: Provisioned) -> None:
    with svc_a.connect() as conn:
        conn.execute(f"CREATE TABLE {svc_a.service}.courses (id serial PRIMARY KEY, title text)")
        conn.execute("INSERT INTO courses (title) VALUES ('Rust'), ('Go')")
        conn.execute("UPDATE courses SET title = 'Zig' WHERE title = 'Go'")
        conn.execute("CREATE INDEX courses_title ON courses (title)")
        titles = conn.execute("SELECT title FROM courses ORDER BY id").fetchall()

    assert titles == [("Rust",), ("Zig",)]


def test_role_cannot_read_or_write_another_services_schema(
    svc_a: Provisioned, svc_b: Provisioned
) -> None:
    with svc_b.connect() as conn:
        conn.execute("CREATE TABLE payments (id int)")
        conn.execute("INSERT INTO payments VALUES (1)")

    with svc_a.connect() as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT * FROM {svc_b.service}.payments")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"INSERT INTO {svc_b.service}.payments VALUES (2)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"CREATE TABLE {svc_b.service}.intruder (id int)")


def test_role_cannot_use_the_public_schema(svc_a: Provisioned) -> None:
    with psycopg.connect(database_admin_url(), autocommit=True) as admin:
        admin.execute(f"CREATE TABLE public.{svc_a.service}_shared (id int)")
        # Even a table everyone may read stays out of reach: the schema itself is closed.
        admin.execute(f"GRANT SELECT ON public.{svc_a.service}_shared TO PUBLIC")
    try:
        with svc_a.connect() as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("CREATE TABLE public.intruder (id int)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM public.{svc_a.service}_shared")
    finally:
        with psycopg.connect(database_admin_url(), autocommit=True) as admin:
            admin.execute(f"DROP TABLE public.{svc_a.service}_shared")


def test_role_cannot_create_schemas_or_databases(svc_a: Provisioned) -> None:
    with svc_a.connect() as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"CREATE SCHEMA {svc_a.service}_extra")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"CREATE DATABASE {svc_a.service}_db")


def test_services_provisioned_at_the_same_time_all_succeed(drop_service, unique_name) -> None:
    # Migration Jobs of several services start together on install.
    services = [drop_service(unique_name("svc_par")) for _ in range(6)]

    def provision(service: str) -> str:
        return provision_service(
            ADMIN_URL, service=service, password=TEST_PASSWORD, database=DATABASE
        )

    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        urls = list(pool.map(provision, services))

    for service, url in zip(services, urls, strict=True):
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            assert conn.execute("SELECT current_schema()").fetchone() == (service,)


@pytest.mark.parametrize("bad", ["Svc", "svc-a", "svc; DROP TABLE x", "1svc"])
def test_unsafe_service_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="safe SQL identifier"):
        provision_service(ADMIN_URL, service=bad, password=TEST_PASSWORD, database=DATABASE)


async def test_transaction_commits_on_success_and_rolls_back_on_error(
    svc_a: Provisioned,
) -> None:
    engine = create_engine(svc_a.url, pool_size=2, application_name=svc_a.service)
    sessions = session_factory(engine)
    try:
        await ping(engine)
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE ledger (entry text)"))

        async with transaction(sessions) as session:
            await session.execute(text("INSERT INTO ledger VALUES ('kept')"))
        with pytest.raises(RuntimeError):
            async with transaction(sessions) as session:
                await session.execute(text("INSERT INTO ledger VALUES ('rolled back')"))
                raise RuntimeError("domain rule failed")

        async with sessions() as session:
            rows = (await session.execute(text("SELECT entry FROM ledger"))).all()
        assert [r.entry for r in rows] == ["kept"]
    finally:
        await engine.dispose()
