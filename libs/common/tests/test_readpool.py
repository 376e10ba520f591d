"""ReadPool: compiled Core statements on raw psycopg, and its optimistic reconnect.

Runs against the local PostgreSQL as its administrative role, in a throwaway schema.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text, bindparam, select, text

from unpuzzle_common.readpool import ReadPool, compile_query
from unpuzzle_common.testing import database_admin_url


@pytest.fixture
def schema() -> AsyncIterator[str]:
    name = f"readpool_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_admin_url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
        conn.execute(f"CREATE TABLE {name}.things (id int PRIMARY KEY, label text NOT NULL)")
        conn.execute(
            f"INSERT INTO {name}.things SELECT i, 'thing ' || i FROM generate_series(1, 9) i"
        )
        conn.execute(f"CREATE SEQUENCE {name}.attempts")
    yield name
    with psycopg.connect(database_admin_url(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
async def pool() -> AsyncIterator[ReadPool]:
    reads = ReadPool(
        database_admin_url(), max_size=3, application_name=f"rp-{uuid.uuid4().hex[:8]}"
    )
    await reads.open()
    yield reads
    await reads.close()


def _things(schema: str) -> Table:
    return Table(
        "things",
        MetaData(schema=schema),
        Column("id", Integer, primary_key=True),
        Column("label", Text),
    )


def _terminate(application_name: str) -> int:
    """Kill every server process of the pool's connections; how many there were."""
    with psycopg.connect(database_admin_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchall()
    return len(rows)


async def test_a_compiled_statement_runs_with_named_values_and_its_own_defaults(schema, pool):
    things = _things(schema)
    query = compile_query(
        "things_above",
        select(things.c.id, things.c.label)
        .where(things.c.id > bindparam("above"))
        .order_by(things.c.id)
        .limit(2),
    )
    assert await pool.fetch(query, {"above": 6}) == [(7, "thing 7"), (8, "thing 8")]
    assert await pool.fetch(query, {"above": 8}) == [(9, "thing 9")]
    with pytest.raises(KeyError, match="abvoe"):
        await pool.fetch(query, {"above": 1, "abvoe": 1})
    # A forgotten value never runs as NULL.
    with pytest.raises(KeyError, match="missing \\['above'\\]"):
        await pool.fetch(query, {})


async def test_reads_leave_no_transaction_open(schema, pool):
    query = compile_query("one", select(bindparam("x", type_=Integer)))
    assert await pool.fetch(query, {"x": 1}) == [(1,)]
    with psycopg.connect(database_admin_url(), autocommit=True) as conn:
        states = conn.execute(
            "SELECT state FROM pg_stat_activity WHERE application_name = %s",
            (pool.application_name,),
        ).fetchall()
    assert states and {state for (state,) in states} == {"idle"}


async def test_a_query_on_a_dead_connection_is_run_again_on_a_new_one(schema, pool):
    things = _things(schema)
    query = compile_query("count", select(things.c.id).where(things.c.id == bindparam("id")))
    # Three connections at once, so the pool holds three when they all die.
    slow = compile_query("slow", select(text("pg_sleep(0.2)")))
    await asyncio.gather(*(pool.fetch(slow) for _ in range(3)))
    assert await pool.fetch(query, {"id": 3}) == [(3,)]
    # Every connection the pool holds dies (a database restart, a proxy cutting them).
    assert _terminate(pool.application_name) == 3
    assert await pool.fetch(query, {"id": 4}) == [(4,)]
    assert await pool.fetch(query, {"id": 5}) == [(5,)]


async def test_a_failing_query_on_a_healthy_connection_is_not_run_twice(schema, pool):
    # The statement counts its own attempts, then is cancelled: an OperationalError
    # whose connection stays usable. Retrying it would double the load of a query that
    # times out, so it is raised as it is.
    counted = f"nextval('{schema}.attempts'), pg_cancel_backend(pg_backend_pid()), pg_sleep(1)"
    query = compile_query("cancelled", select(text(counted)))
    with pytest.raises(psycopg.errors.QueryCanceled):
        await pool.fetch(query)
    with psycopg.connect(database_admin_url(), autocommit=True) as conn:
        (attempts,) = conn.execute(f"SELECT last_value FROM {schema}.attempts").fetchone()
    assert attempts == 1


@pytest.mark.parametrize("prepared", [True, False])
async def test_statements_are_prepared_unless_turned_off(prepared):
    reads = ReadPool(database_admin_url(), max_size=1, prepared_statements=prepared)
    await reads.open()
    try:
        query = compile_query("again", select(bindparam("n", type_=Integer) + 1))
        for n in range(8):  # psycopg prepares a statement on its 5th execution
            assert await reads.fetch(query, {"n": n}) == [(n + 1,)]
        held = compile_query(
            "held", select(text("count(*) FROM pg_prepared_statements WHERE NOT from_sql"))
        )
        [(count,)] = await reads.fetch(held)
    finally:
        await reads.close()
    assert (count >= 1) if prepared else (count == 0)
