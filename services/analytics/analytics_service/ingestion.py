"""Applying events: store each once as a fact, then fold the new facts into the read
model and the rollups, all in the caller's transaction. And the way back: rebuild every
derived table from the facts alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from analytics_service.course_directory import apply_course_facts, rebuild_course_directory
from analytics_service.facts import Fact, fact_from, store_facts
from analytics_service.models import SCHEMA, facts
from analytics_service.rollups import apply_facts, rebuild_rollups
from unpuzzle_common.events.envelope import Envelope


async def ingest_facts(session: AsyncSession, batch: Sequence[Fact]) -> int:
    """Store the facts not seen before and count them; returns how many were new.

    A fact already stored (a redelivery, a replay by another path) adds nothing.
    """
    new = await store_facts(session, batch)
    if new:
        await apply_course_facts(session, new)
        await apply_facts(session, new)
    return len(new)


async def ingest(session: AsyncSession, envelopes: Sequence[Envelope]) -> int:
    """:func:`ingest_facts` for envelopes; :class:`PoisonEvent` if one's data is invalid."""
    return await ingest_facts(session, [fact_from(envelope) for envelope in envelopes])


async def handle_event(session: AsyncSession, envelope: Envelope) -> None:
    """The consumers' per-event handler (run after the inbox row, in its transaction)."""
    await ingest(session, [envelope])


async def rebuild_from_facts(session: AsyncSession) -> int:
    """Recompute the course directory and every rollup from the facts; returns the
    number of facts. Consumers that write meanwhile wait (the facts table is locked
    against inserts until the caller commits) and then add their events on top.
    """
    await session.execute(text(f"LOCK TABLE {SCHEMA}.{facts.name} IN EXCLUSIVE MODE"))
    await rebuild_course_directory(session)
    await rebuild_rollups(session)
    count = await session.execute(text(f"SELECT count(*) FROM {SCHEMA}.{facts.name}"))
    return int(count.scalar_one())
