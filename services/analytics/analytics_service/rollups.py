"""Daily rollups: what each fact adds, applied incrementally or rebuilt from all facts.

The measures below are the single definition of every rollup column: the consumer adds
a batch's facts to the rows they touch (``INSERT ... ON CONFLICT DO UPDATE SET x = x +
excluded.x`` in its transaction) and ``rebuild`` recomputes every row from the facts
with one ``GROUP BY`` per table generated from the same measures. A test proves the
two agree row for row.

Active learners (distinct users completing a lesson that day) come from the sets kept
by :mod:`analytics_service.learners`: each (course, day, user) row that is new adds one
to that day's count.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Table, TextClause, case, delete, func, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from analytics_service.bulk import TARGET, insert_rows, rows_param
from analytics_service.facts import Fact
from analytics_service.learners import rebuild_learners, record_learners
from analytics_service.models import (
    active_learners,
    course_daily,
    course_revenue_daily,
    facts,
    platform_active_learners,
    platform_daily,
    platform_revenue_daily,
)
from unpuzzle_common.events.schemas import (
    AiUsageRecorded,
    CourseCompleted,
    EnrollmentCreated,
    EnrollmentRevoked,
    LessonCompleted,
    MediaUploaded,
    PaymentRefunded,
    PaymentSucceeded,
    ReviewCreated,
    SubscriptionActivated,
    SubscriptionCanceled,
    UserRegistered,
)


@dataclass(frozen=True)
class Measure:
    """A rollup column: the events of ``event_type`` counted, or their ``value`` summed."""

    column: str
    event_type: str
    #: A numeric column of ``facts`` to sum; None counts the events.
    value: str | None = None

    def of(self, fact: Fact) -> int:
        return 1 if self.value is None else int(getattr(fact, self.value) or 0)


COURSE_MEASURES: tuple[Measure, ...] = (
    Measure("enrollments", EnrollmentCreated.event_type),
    Measure("revocations", EnrollmentRevoked.event_type),
    Measure("lesson_completions", LessonCompleted.event_type),
    Measure("course_completions", CourseCompleted.event_type),
    Measure("reviews", ReviewCreated.event_type),
    Measure("rating_sum", ReviewCreated.event_type, "rating"),
)
PLATFORM_MEASURES: tuple[Measure, ...] = (
    Measure("new_users", UserRegistered.event_type),
    *COURSE_MEASURES,
    Measure("subscriptions_activated", SubscriptionActivated.event_type),
    Measure("subscriptions_canceled", SubscriptionCanceled.event_type),
    Measure("media_uploads", MediaUploaded.event_type),
    Measure("ai_requests", AiUsageRecorded.event_type),
    Measure("ai_tokens", AiUsageRecorded.event_type, "tokens"),
    Measure("ai_cost_micro_usd", AiUsageRecorded.event_type, "cost_micro_usd"),
)
#: Money, per currency (integer minor units).
REVENUE_MEASURES: tuple[Measure, ...] = (
    Measure("payments", PaymentSucceeded.event_type),
    Measure("revenue", PaymentSucceeded.event_type, "amount"),
    Measure("refunds", PaymentRefunded.event_type),
    Measure("refunded", PaymentRefunded.event_type, "amount"),
)


@dataclass(frozen=True)
class Rollup:
    """One rollup table: its key columns (besides ``day``), measures, and which facts count."""

    table: Table
    keys: tuple[str, ...]
    measures: tuple[Measure, ...]
    #: Fact columns that must be set for a fact to count here.
    requires: tuple[str, ...]
    #: The distinct-learner set that feeds its ``active_learners`` column, if any.
    learners: Table | None = None

    @cached_property
    def event_types(self) -> frozenset[str]:
        return frozenset(m.event_type for m in self.measures)

    def key_of(self, fact: Fact) -> tuple:
        return tuple(getattr(fact, k) for k in self.keys)

    def counts(self, fact: Fact) -> bool:
        return fact.type in self.event_types and all(
            getattr(fact, c) is not None for c in self.requires
        )


ROLLUPS: tuple[Rollup, ...] = (
    Rollup(course_daily, ("course_id", "day"), COURSE_MEASURES, ("course_id",), active_learners),
    Rollup(
        course_revenue_daily,
        ("course_id", "day", "currency"),
        REVENUE_MEASURES,
        ("course_id", "currency"),
    ),
    Rollup(platform_daily, ("day",), PLATFORM_MEASURES, (), platform_active_learners),
    Rollup(platform_revenue_daily, ("day", "currency"), REVENUE_MEASURES, ("currency",)),
)


# -- incremental ------------------------------------------------------------------------


async def apply_facts(session: AsyncSession, batch: Sequence[Fact]) -> None:
    """Add newly stored facts to the rollups, in the caller's transaction.

    Rows are written in key order, tables in one fixed order, so concurrent consumers
    (one per producing stream) wait for each other but never deadlock.
    """
    new_course_learners, new_platform_learners = await record_learners(session, batch)
    for rollup in ROLLUPS:
        deltas: dict[tuple, Counter[str]] = defaultdict(Counter)
        for fact in batch:
            if rollup.counts(fact):
                delta = deltas[rollup.key_of(fact)]
                for measure in rollup.measures:
                    if measure.event_type == fact.type:
                        delta[measure.column] += measure.of(fact)
        if rollup.learners is active_learners:
            for key, n in new_course_learners.items():
                deltas[key]["active_learners"] += n
        elif rollup.learners is platform_active_learners:
            for key, n in new_platform_learners.items():
                deltas[key]["active_learners"] += n
        await _add(session, rollup, deltas)


def _columns(rollup: Rollup) -> list[str]:
    columns = list(dict.fromkeys(m.column for m in rollup.measures))
    if rollup.learners is not None:
        columns.append("active_learners")
    return columns


async def _add(session: AsyncSession, rollup: Rollup, deltas: dict[tuple, Counter[str]]) -> None:
    if not deltas:
        return
    columns = _columns(rollup)
    rows = [
        {**dict(zip(rollup.keys, key, strict=True)), **{c: delta[c] for c in columns}}
        for key, delta in sorted(deltas.items(), key=lambda item: _sortable(item[0]))
    ]
    await session.execute(_UPSERTS[rollup.table.name], rows_param(rows))


def _upsert_sql(rollup: Rollup) -> TextClause:
    """``INSERT ... ON CONFLICT (key) DO UPDATE SET x = t.x + excluded.x`` for a rollup."""
    keys = _primary_key(rollup.table)
    columns = _columns(rollup)
    add = ", ".join(f"{c} = {TARGET}.{c} + excluded.{c}" for c in columns)
    conflict = f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {add}"
    return insert_rows(rollup.table, [*keys, *columns], conflict, order_by=keys)


def _primary_key(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def _sortable(key: tuple) -> tuple:
    # Keys mix UUIDs, dates and strings; each position has one type, so they sort.
    return tuple(str(k) if isinstance(k, uuid.UUID) else k for k in key)


_UPSERTS = {rollup.table.name: _upsert_sql(rollup) for rollup in ROLLUPS}


# -- rebuild ----------------------------------------------------------------------------


async def rebuild_rollups(session: AsyncSession) -> None:
    """Recompute every rollup row from the facts (the caller holds the facts lock)."""
    await rebuild_learners(session)
    for rollup in ROLLUPS:
        await session.execute(delete(rollup.table))
    for rollup in ROLLUPS:
        await _rebuild(session, rollup)


async def _rebuild(session: AsyncSession, rollup: Rollup) -> None:
    keys = [facts.c[k] for k in rollup.keys]
    sums = {}
    for measure in rollup.measures:
        value = literal(1) if measure.value is None else facts.c[measure.value]
        sums[measure.column] = func.coalesce(
            func.sum(case((facts.c.type == measure.event_type, value), else_=0)), 0
        )
    query = (
        select(*keys, *sums.values())
        .where(
            facts.c.type.in_(sorted(rollup.event_types)),
            *(facts.c[c].is_not(None) for c in rollup.requires),
        )
        .group_by(*keys)
    )
    await session.execute(insert(rollup.table).from_select([*rollup.keys, *sums.keys()], query))
    if rollup.learners is not None:
        group = [rollup.learners.c[k] for k in rollup.keys]
        counted = select(*group, func.count().label("n")).group_by(*group).subquery("learners")
        await session.execute(
            update(rollup.table)
            .where(
                tuple_(*(rollup.table.c[k] for k in rollup.keys))
                == tuple_(*(counted.c[k] for k in rollup.keys))
            )
            .values(active_learners=counted.c.n)
        )
