"""Reports read from the rollups: a course, an instructor's courses, the platform, a day.

Totals over a range are sums of the daily rows, except active learners: those are the
distinct users over the whole range (from the learner sets), not a sum of daily counts.
Money is listed per currency, never added across currencies. Every day of a range
appears in a day series, with zeros when nothing happened.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, TypeVar

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from analytics_service.course_directory import (
    CourseInfo,
    courses_by_id,
    get_course,
    instructor_courses,
)
from analytics_service.learners import course_learners, platform_learners
from analytics_service.models import (
    course_daily,
    course_revenue_daily,
    platform_daily,
    platform_revenue_daily,
)
from analytics_service.rollups import COURSE_MEASURES, PLATFORM_MEASURES, REVENUE_MEASURES
from analytics_service.schemas import (
    CourseDay,
    CourseMetrics,
    CourseReport,
    CourseSummary,
    DailyCourse,
    DailyReport,
    InstructorCourse,
    InstructorReport,
    Money,
    PlatformDay,
    PlatformMetrics,
    PlatformReport,
)
from unpuzzle_common.auth import Principal
from unpuzzle_common.errors import NotFound, ValidationFailed

M = TypeVar("M", bound=CourseMetrics)

COURSE_COLUMNS = tuple(dict.fromkeys(m.column for m in COURSE_MEASURES))
PLATFORM_COLUMNS = tuple(dict.fromkeys(m.column for m in PLATFORM_MEASURES))
MONEY_COLUMNS = tuple(dict.fromkeys(m.column for m in REVENUE_MEASURES))
#: A day's row also has its active learners (a range's are counted distinct instead).
COURSE_DAY_COLUMNS = (*COURSE_COLUMNS, "active_learners")
PLATFORM_DAY_COLUMNS = (*PLATFORM_COLUMNS, "active_learners")
_ZERO_COURSE: dict[str, int] = dict.fromkeys(COURSE_COLUMNS, 0)
_ZERO_COURSE_DAY: dict[str, int] = dict.fromkeys(COURSE_DAY_COLUMNS, 0)
_ZERO_PLATFORM: dict[str, int] = dict.fromkeys(PLATFORM_DAY_COLUMNS, 0)


# -- ranges -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DateRange:
    """Days from ``start`` to ``end``, both included (UTC calendar days)."""

    start: date
    end: date

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]


def resolve_range(
    start: date | None, end: date | None, *, today: date, default_days: int, max_days: int
) -> DateRange:
    """The range a request asks for: by default the ``default_days`` ending today (or
    ending ``to``); ``from`` alone runs to today. 422 when ``from`` is after ``to`` or
    the range is longer than ``max_days``."""
    if end is None:
        end = max(today, start) if start is not None else today
    if start is None:
        try:
            start = end - timedelta(days=default_days - 1)
        except OverflowError:
            message = "is before the first day a report can cover"
            raise ValidationFailed(
                f"to: {message}", errors=[{"field": "to", "message": message}]
            ) from None
    if start > end:
        raise ValidationFailed(
            "from: must not be after to",
            errors=[{"field": "from", "message": "must not be after to"}],
        )
    if (end - start).days + 1 > max_days:
        message = f"a report covers at most {max_days} days"
        raise ValidationFailed(f"to: {message}", errors=[{"field": "to", "message": message}])
    return DateRange(start, end)


# -- periods ----------------------------------------------------------------------------

#: A period's counts by column, and its money by currency (payments, revenue, refunds,
#: refunded: MONEY_COLUMNS' order).
Counts = dict[str, int]
MoneyByCurrency = dict[str, tuple[int, ...]]


def _sum_counts(periods: Iterable[Counts], columns: Sequence[str]) -> Counts:
    totals = dict.fromkeys(columns, 0)
    for counts in periods:
        for column in columns:
            totals[column] += counts[column]
    return totals


def _sum_money(periods: Iterable[MoneyByCurrency]) -> MoneyByCurrency:
    totals: dict[str, list[int]] = {}
    for money in periods:
        for currency, values in money.items():
            total = totals.setdefault(currency, [0] * len(MONEY_COLUMNS))
            for i, value in enumerate(values):
                total[i] += value
    return {currency: tuple(values) for currency, values in totals.items()}


def _metrics(
    model: type[M],
    counts: Counts | None,
    money: MoneyByCurrency | None,
    currencies: Sequence[str],
    **extra: Any,
) -> M:
    """A metrics model of one period; ``currencies`` (sorted) are listed even when zero."""
    counts = counts or {}
    money = money or {}
    reviews = counts.get("reviews", 0)
    fields = {name: counts.get(name, 0) for name in model.model_fields if name in counts}
    fields.update(extra)
    fields["average_rating"] = round(counts["rating_sum"] / reviews, 2) if reviews else None
    fields["revenue"] = [_money(c, money.get(c)) for c in currencies]
    return model(**fields)


def _money(currency: str, values: tuple[int, ...] | None) -> Money:
    payments, revenue, refunds, refunded = values or (0, 0, 0, 0)
    return Money(
        currency=currency,
        payments=payments,
        gross=revenue,
        refunds=refunds,
        refunded=refunded,
        net=revenue - refunded,
    )


async def _counts_by(
    session: AsyncSession, table: Table, key: str, columns: Sequence[str], *where: Any
) -> dict[Any, Counts]:
    """Rows of a count rollup as ``{key value: counts}`` (summed per key)."""
    query = select(table.c[key], *(func.sum(table.c[c]) for c in columns)).where(*where)
    result = await session.execute(query.group_by(table.c[key]))
    return {row[0]: dict(zip(columns, map(int, row[1:]), strict=True)) for row in result.tuples()}


async def _money_by(
    session: AsyncSession, table: Table, key: str, *where: Any
) -> dict[Any, MoneyByCurrency]:
    """Rows of a money rollup as ``{key value: {currency: values}}`` (summed per key)."""
    sums = (func.sum(table.c[c]) for c in MONEY_COLUMNS)
    query = select(table.c[key], table.c.currency, *sums).where(*where)
    result = await session.execute(query.group_by(table.c[key], table.c.currency))
    out: dict[Any, MoneyByCurrency] = {}
    for row in result.tuples():
        out.setdefault(row[0], {})[row[1]] = tuple(map(int, row[2:]))
    return out


def _summary(course: CourseInfo) -> CourseSummary:
    return CourseSummary(
        id=course.course_id,
        title=course.title,
        instructor_id=course.instructor_id,
        is_published=course.is_published,
        currency=course.currency,
    )


# -- a course ---------------------------------------------------------------------------


async def readable_course(
    session: AsyncSession, course_id: uuid.UUID, principal: Principal
) -> CourseInfo:
    """The course, if the caller may read its analytics (its instructor, an admin).
    404 otherwise, so a course's existence is not revealed."""
    course = await get_course(session, course_id)
    if course is None or not (principal.is_admin or course.instructor_id == principal.user_id):
        raise NotFound("No such course.")
    return course


async def course_report(session: AsyncSession, course: CourseInfo, rng: DateRange) -> CourseReport:
    in_range = (course_daily.c.course_id == course.course_id, _days(course_daily, rng))
    days = await _counts_by(session, course_daily, "day", COURSE_DAY_COLUMNS, *in_range)
    money = await _money_by(
        session,
        course_revenue_daily,
        "day",
        course_revenue_daily.c.course_id == course.course_id,
        _days(course_revenue_daily, rng),
    )
    currencies = sorted({course.currency}.union(*money.values()))
    learners = await course_learners(session, [course.course_id], rng.start, rng.end)
    totals = _sum_counts(days.values(), COURSE_COLUMNS)
    return CourseReport(
        course=_summary(course),
        from_=rng.start,
        to=rng.end,
        totals=_metrics(
            CourseMetrics,
            totals,
            _sum_money(money.values()),
            currencies,
            active_learners=learners.get(course.course_id, 0),
        ),
        days=[
            _metrics(CourseDay, days.get(day, _ZERO_COURSE), money.get(day), currencies, date=day)
            for day in rng.days
        ],
    )


def _days(table: Table, rng: DateRange) -> Any:
    return table.c.day.between(rng.start, rng.end)


# -- an instructor ----------------------------------------------------------------------


async def instructor_report(
    session: AsyncSession, instructor_id: uuid.UUID, rng: DateRange
) -> InstructorReport:
    owned = await instructor_courses(session, instructor_id)
    ids = [c.course_id for c in owned]
    counts: dict[Any, Counts] = {}
    money: dict[Any, MoneyByCurrency] = {}
    learners: dict[uuid.UUID | None, int] = {None: 0}
    if ids:
        counts = await _counts_by(
            session,
            course_daily,
            "course_id",
            COURSE_COLUMNS,
            course_daily.c.course_id.in_(ids),
            _days(course_daily, rng),
        )
        money = await _money_by(
            session,
            course_revenue_daily,
            "course_id",
            course_revenue_daily.c.course_id.in_(ids),
            _days(course_revenue_daily, rng),
        )
        learners = await course_learners(session, ids, rng.start, rng.end)
    currencies = {
        c.course_id: sorted({c.currency}.union(money.get(c.course_id, {}))) for c in owned
    }
    return InstructorReport(
        instructor_id=instructor_id,
        from_=rng.start,
        to=rng.end,
        totals=_metrics(
            CourseMetrics,
            _sum_counts(counts.values(), COURSE_COLUMNS),
            _sum_money(money.values()),
            sorted(set().union(*currencies.values())),
            active_learners=learners[None],
        ),
        courses=[
            InstructorCourse(
                course=_summary(course),
                totals=_metrics(
                    CourseMetrics,
                    counts.get(course.course_id, _ZERO_COURSE),
                    money.get(course.course_id),
                    currencies[course.course_id],
                    active_learners=learners.get(course.course_id, 0),
                ),
            )
            for course in owned
        ],
    )


# -- the platform -----------------------------------------------------------------------


async def platform_report(session: AsyncSession, rng: DateRange) -> PlatformReport:
    days = await _counts_by(
        session, platform_daily, "day", PLATFORM_DAY_COLUMNS, _days(platform_daily, rng)
    )
    money = await _money_by(
        session, platform_revenue_daily, "day", _days(platform_revenue_daily, rng)
    )
    currencies = sorted(set().union(*money.values()))
    learners = await platform_learners(session, rng.start, rng.end)
    return PlatformReport(
        from_=rng.start,
        to=rng.end,
        totals=_metrics(
            PlatformMetrics,
            _sum_counts(days.values(), PLATFORM_COLUMNS),
            _sum_money(money.values()),
            currencies,
            active_learners=learners,
        ),
        days=[
            _metrics(
                PlatformDay, days.get(day, _ZERO_PLATFORM), money.get(day), currencies, date=day
            )
            for day in rng.days
        ],
    )


# -- one day ----------------------------------------------------------------------------


async def compute_daily_report(session: AsyncSession, day: date) -> DailyReport:
    """The platform's day and every course with activity that day, from the rollups."""
    platform = await platform_report(session, DateRange(day, day))
    counts = await _counts_by(
        session, course_daily, "course_id", COURSE_DAY_COLUMNS, course_daily.c.day == day
    )
    money = await _money_by(
        session, course_revenue_daily, "course_id", course_revenue_daily.c.day == day
    )
    ids = sorted(counts.keys() | money.keys(), key=str)
    known = await courses_by_id(session, ids)
    rows = []
    for course_id in ids:
        info = known.get(course_id)
        currencies = set(money.get(course_id, {}))
        if info is not None:
            currencies.add(info.currency)
        rows.append(
            _metrics(
                DailyCourse,
                counts.get(course_id, _ZERO_COURSE_DAY),
                money.get(course_id),
                sorted(currencies),
                course_id=course_id,
                title=info.title if info else None,
                instructor_id=info.instructor_id if info else None,
            )
        )
    rows.sort(key=lambda r: (r.title is None, r.title or "", str(r.course_id)))
    return DailyReport(date=day, stored=False, platform=platform.totals, courses=rows)
