"""Active learners: the distinct users who completed a lesson, exact per day and over any range.

Two layers, both derived from lesson.completed.v1 facts:

- the sets ``active_learners`` (course, day, user) and ``platform_active_learners``
  (day, user). Inserting a batch's pairs with ``ON CONFLICT DO NOTHING RETURNING`` says
  which are new: each new row adds one to that day's ``active_learners`` count.
- per learner, the days they were active as a date multirange (``learner_activity`` per
  course, ``platform_learner_activity``). A range's distinct learners are the rows whose
  days overlap it: one row per learner, however many days they were active, where the
  sets would need a ``DISTINCT`` over every (learner, day) of the range.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Table, TextClause, delete, func, literal, select, text
from sqlalchemy.dialects.postgresql import DATERANGE, insert
from sqlalchemy.ext.asyncio import AsyncSession

from analytics_service.bulk import TARGET, batch_rows, insert_rows, rows_param, sql_type
from analytics_service.facts import Fact
from analytics_service.models import (
    active_learners,
    facts,
    learner_activity,
    platform_active_learners,
    platform_learner_activity,
)
from unpuzzle_common.events.schemas import LessonCompleted

#: The event whose distinct users per day are the active learners.
ACTIVE_LEARNER_EVENT = LessonCompleted.event_type


async def record_learners(
    session: AsyncSession, batch: Sequence[Fact]
) -> tuple[Counter[tuple], Counter[tuple]]:
    """Add the batch's learners; the new ones per (course, day) and per (day,)."""
    learners = [
        f
        for f in batch
        if f.type == ACTIVE_LEARNER_EVENT and f.course_id is not None and f.user_id is not None
    ]
    if not learners:
        return Counter(), Counter()
    new_course = await _insert_new(
        session, active_learners, sorted({(f.course_id, f.day, f.user_id) for f in learners})
    )
    new_platform = await _insert_new(
        session, platform_active_learners, sorted({(f.day, f.user_id) for f in learners})
    )
    await _add_days(session, learner_activity, [(c, u, d) for c, d, u in new_course])
    await _add_days(session, platform_learner_activity, [(u, d) for d, u in new_platform])
    return (
        Counter((course_id, day) for course_id, day, _ in new_course),
        Counter((day,) for day, _ in new_platform),
    )


def _insert_new_sql(table: Table) -> TextClause:
    keys = [c.name for c in table.primary_key.columns]
    return insert_rows(
        table, keys, f"ON CONFLICT DO NOTHING RETURNING {', '.join(keys)}", order_by=keys
    )


def _add_days_sql(summary: Table) -> TextClause:
    """Union a batch's (key..., day) rows into each key's multirange of days."""
    keys = [c.name for c in summary.primary_key.columns]
    names = ", ".join(keys)
    source = batch_rows([*((k, sql_type(summary, k)) for k in keys), ("day", "DATE")])
    return text(
        f"INSERT INTO {summary.schema}.{summary.name} AS {TARGET} ({names}, days) "
        f"SELECT {names}, range_agg(daterange(day, day, '[]')) FROM {source} "
        f"GROUP BY {names} ORDER BY {names} "
        f"ON CONFLICT ({names}) DO UPDATE SET days = {TARGET}.days + excluded.days"
    )


_INSERT_NEW = {t.name: _insert_new_sql(t) for t in (active_learners, platform_active_learners)}
_ADD_DAYS = {t.name: _add_days_sql(t) for t in (learner_activity, platform_learner_activity)}


async def _insert_new(session: AsyncSession, table: Table, rows: list[tuple]) -> list[tuple]:
    """Insert the rows not already there; return those that were new."""
    keys = [c.name for c in table.primary_key.columns]
    params = rows_param(dict(zip(keys, row, strict=True)) for row in rows)
    return [tuple(row) for row in await session.execute(_INSERT_NEW[table.name], params)]


async def _add_days(session: AsyncSession, summary: Table, rows: list[tuple]) -> None:
    """Add new (key..., day) rows to the learners' multiranges of days."""
    if not rows:
        return
    names = [*(c.name for c in summary.primary_key.columns), "day"]
    params = rows_param(dict(zip(names, row, strict=True)) for row in rows)
    await session.execute(_ADD_DAYS[summary.name], params)


async def rebuild_learners(session: AsyncSession) -> None:
    """Recompute both layers from the facts (the caller holds the facts lock)."""
    for table in (
        active_learners,
        platform_active_learners,
        learner_activity,
        platform_learner_activity,
    ):
        await session.execute(delete(table))
    learner = (
        facts.c.type == ACTIVE_LEARNER_EVENT,
        facts.c.course_id.is_not(None),
        facts.c.user_id.is_not(None),
    )
    await session.execute(
        insert(active_learners).from_select(
            ["course_id", "day", "user_id"],
            select(facts.c.course_id, facts.c.day, facts.c.user_id).where(*learner).distinct(),
        )
    )
    await session.execute(
        insert(platform_active_learners).from_select(
            ["day", "user_id"],
            select(facts.c.day, facts.c.user_id).where(*learner).distinct(),
        )
    )
    for sets, summary in (
        (active_learners, learner_activity),
        (platform_active_learners, platform_learner_activity),
    ):
        keys = [sets.c[c.name] for c in summary.primary_key.columns]
        await session.execute(
            insert(summary).from_select(
                [*(c.name for c in keys), "days"],
                select(*keys, func.range_agg(_one_day(sets.c.day))).group_by(*keys),
            )
        )


def _one_day(day: Any) -> Any:
    return func.daterange(day, day, literal("[]"), type_=DATERANGE)


def _overlapping(table: Table, start: date, end: date) -> Any:
    return table.c.days.op("&&")(func.daterange(start, end, literal("[]"), type_=DATERANGE))


async def course_learners(
    session: AsyncSession, course_ids: Sequence[uuid.UUID], start: date, end: date
) -> dict[uuid.UUID | None, int]:
    """Distinct learners from ``start`` to ``end`` per course, and across them all (None)."""
    if not course_ids:
        return {None: 0}
    where = (
        learner_activity.c.course_id.in_(course_ids),
        _overlapping(learner_activity, start, end),
    )
    result = await session.execute(
        select(learner_activity.c.course_id, func.count())
        .where(*where)
        .group_by(learner_activity.c.course_id)
    )
    counts: dict[uuid.UUID | None, int] = dict(result.tuples().all())
    if len(course_ids) == 1:
        counts[None] = sum(counts.values())
    else:
        # DISTINCT in a subquery is hashed; COUNT(DISTINCT ...) would sort.
        users = select(learner_activity.c.user_id).where(*where).distinct().subquery()
        counts[None] = (await session.execute(select(func.count()).select_from(users))).scalar_one()
    return counts


async def platform_learners(session: AsyncSession, start: date, end: date) -> int:
    """Distinct learners on the whole platform from ``start`` to ``end``."""
    query = select(func.count()).where(_overlapping(platform_learner_activity, start, end))
    return (await session.execute(query)).scalar_one()
