"""EventHousekeeping: old published outbox rows and old inbox rows go, nothing else.

Runs against the local PostgreSQL (administrative role) in a throwaway schema holding
the two event tables as every service has them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import MetaData, func, insert, select

from unpuzzle_common.db import create_engine, session_factory
from unpuzzle_common.events.housekeeping import PRUNED, EventHousekeeping
from unpuzzle_common.events.outbox import create_event_tables, inbox_table, outbox_table
from unpuzzle_common.testing import database_admin_url

RETENTION = timedelta(days=8)


@pytest.fixture
async def tables() -> AsyncIterator[tuple]:
    schema = f"housekeeping_{uuid.uuid4().hex[:10]}"
    url = database_admin_url().replace("postgresql://", "postgresql+psycopg://", 1)
    with psycopg.connect(database_admin_url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    engine = create_engine(url, pool_size=2)
    async with engine.begin() as conn:
        await conn.run_sync(create_event_tables, schema)
    metadata = MetaData(schema=schema)
    yield session_factory(engine), outbox_table(metadata), inbox_table(metadata)
    await engine.dispose()
    with psycopg.connect(database_admin_url(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


async def _add_outbox(sessions, outbox, *, age_days: float, published: bool) -> None:
    at = func.now() - timedelta(days=age_days)
    async with sessions() as session, session.begin():
        await session.execute(
            insert(outbox).values(
                event_id=uuid.uuid4(),
                type="thing.happened.v1",
                subject=f"age {age_days}",
                payload={},
                created_at=at,
                published_at=at if published else None,
            )
        )


async def _add_inbox(sessions, inbox, *, age_days: float) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            insert(inbox).values(
                consumer="c",
                event_id=uuid.uuid4(),
                received_at=func.now() - timedelta(days=age_days),
            )
        )


async def _rows(sessions, table, column) -> list:
    async with sessions() as session:
        return sorted((await session.execute(select(column))).scalars())


def _pruned(table: str) -> float:
    return PRUNED.labels("test", table)._value.get()


async def test_only_old_published_outbox_rows_and_old_inbox_rows_go(tables):
    sessions, outbox, inbox = tables
    for age in (20, 9, 8.5, 7, 1):
        await _add_outbox(sessions, outbox, age_days=age, published=True)
        await _add_inbox(sessions, inbox, age_days=age)
    await _add_outbox(sessions, outbox, age_days=30, published=False)  # never published
    before = (_pruned("outbox"), _pruned("inbox"))
    housekeeping = EventHousekeeping(
        sessions,
        service="test",
        outbox=outbox,
        inbox=inbox,
        retention=RETENTION,
        interval=3600,
        batch=2,
    )

    assert await housekeeping.prune_once() == {"outbox": 3, "inbox": 3}  # batches of 2

    assert await _rows(sessions, outbox, outbox.c.subject) == ["age 1", "age 30", "age 7"]
    kept_inbox = await _rows(
        sessions, inbox, func.round(func.extract("epoch", func.now() - inbox.c.received_at) / 86400)
    )
    assert kept_inbox == [1, 7]
    assert (_pruned("outbox"), _pruned("inbox")) == (before[0] + 3, before[1] + 3)
    assert await housekeeping.prune_once() == {"outbox": 0, "inbox": 0}


async def test_a_failure_is_logged_and_the_next_interval_tries_again(tables, caplog):
    sessions, _, inbox = tables
    missing = MetaData(schema="no_such_schema_here")
    housekeeping = EventHousekeeping(
        sessions,
        service="test",
        outbox=outbox_table(missing),
        inbox=inbox,
        retention=RETENTION,
        interval=0.05,
    )
    stop = asyncio.Event()
    caplog.set_level(logging.ERROR, logger="unpuzzle.events.housekeeping")
    task = asyncio.create_task(housekeeping.run(stop))
    await asyncio.sleep(0.3)
    assert not task.done(), "a failing pruning must not end the worker's task"
    failures = [r for r in caplog.records if "housekeeping failed" in r.getMessage()]
    assert len(failures) >= 2
    stop.set()
    await asyncio.wait_for(task, 2)
