"""Rollups from a scripted stream: each event counts once, on the UTC day it happened."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import select

from analytics_service.facts import NO_CURRENCY
from analytics_service.models import (
    course_daily,
    course_revenue_daily,
    courses,
    facts,
    platform_daily,
    platform_revenue_daily,
)
from unpuzzle_common.events import schemas as s
from unpuzzle_common.testing import truncate_schema

DAY1, DAY2 = date(2026, 3, 1), date(2026, 3, 2)
COUNTS = (
    "enrollments",
    "revocations",
    "lesson_completions",
    "course_completions",
    "reviews",
    "rating_sum",
    "active_learners",
)
MONEY = ("payments", "revenue", "refunds", "refunded")


async def rows(sessions, table, *where) -> list:
    async with sessions() as session:
        return list((await session.execute(select(table).where(*where))).mappings())


def pick(row, columns) -> dict:
    return {c: row[c] for c in columns}


async def test_each_event_counts_once_on_the_day_it_happened(deliver, scenario, sessions):
    await deliver(scenario.stream)

    by_day = {
        r["day"]: pick(r, COUNTS)
        for r in await rows(sessions, course_daily, course_daily.c.course_id == scenario.course_a)
    }
    assert by_day == {
        # u1, u2 and the late u3; four lessons (one at 01:30+05:00 = day 1 UTC) by 3 learners
        DAY1: dict(
            enrollments=3,
            revocations=0,
            lesson_completions=4,
            course_completions=0,
            reviews=0,
            rating_sum=0,
            active_learners=3,
        ),
        DAY2: dict(
            enrollments=0,
            revocations=1,
            lesson_completions=1,
            course_completions=1,
            reviews=2,
            rating_sum=9,
            active_learners=1,
        ),
    }
    money = {
        (r["day"], r["currency"]): pick(r, MONEY)
        for r in await rows(
            sessions, course_revenue_daily, course_revenue_daily.c.course_id == scenario.course_a
        )
    }
    assert money == {
        (DAY1, "usd"): dict(payments=1, revenue=1999, refunds=0, refunded=0),
        (DAY2, "usd"): dict(payments=0, revenue=0, refunds=1, refunded=1999),
    }


async def test_platform_rollups_cover_every_kind_of_event(deliver, scenario, sessions):
    await deliver(scenario.stream)

    platform = {r["day"]: dict(r) for r in await rows(sessions, platform_daily)}
    assert pick(platform[DAY1], ("new_users", "media_uploads", "enrollments")) == dict(
        new_users=2, media_uploads=1, enrollments=3
    )
    assert pick(platform[DAY1], ("ai_requests", "ai_tokens", "ai_cost_micro_usd")) == dict(
        ai_requests=1, ai_tokens=120, ai_cost_micro_usd=2400
    )
    assert pick(platform[DAY1], ("lesson_completions", "active_learners")) == dict(
        lesson_completions=4, active_learners=3
    )
    # Day 2: u2 in course A and u4 in course B are two distinct learners.
    assert pick(
        platform[DAY2],
        ("enrollments", "revocations", "active_learners", "reviews", "rating_sum"),
    ) == dict(enrollments=1, revocations=1, active_learners=2, reviews=2, rating_sum=9)
    assert pick(platform[DAY2], ("subscriptions_activated", "ai_tokens")) == dict(
        subscriptions_activated=1, ai_tokens=80
    )
    money = {
        (r["day"], r["currency"]): pick(r, MONEY)
        for r in await rows(sessions, platform_revenue_daily)
    }
    assert money == {
        (DAY1, "usd"): dict(payments=1, revenue=1999, refunds=0, refunded=0),
        (DAY2, "usd"): dict(payments=0, revenue=0, refunds=1, refunded=1999),
        (DAY2, "eur"): dict(payments=1, revenue=500, refunds=0, refunded=0),
    }


async def test_duplicates_are_stored_once_and_reported_as_such(deliver, scenario, sessions):
    applied = await deliver(scenario.stream)

    assert applied.count(False) == 4  # the four redeliveries in the script
    stored = await rows(sessions, facts)
    assert len(stored) == len({e.id for e in scenario.stream}) == len(scenario.stream) - 4


async def test_a_late_older_course_snapshot_does_not_undo_a_newer_one(deliver, scenario, sessions):
    await deliver(scenario.stream)

    [course] = await rows(sessions, courses, courses.c.course_id == scenario.course_a)
    assert (course["title"], course["price"], course["instructor_id"]) == (
        "Algebra",
        1999,
        scenario.instructor,
    )


async def test_a_batch_applies_exactly_what_single_events_apply(
    deliver, consumer_for, scenario, snapshot
):
    await deliver(scenario.stream)
    one_by_one = await snapshot()

    truncate_schema("analytics")
    by_source: dict[str, list] = {}
    for env in scenario.stream:
        by_source.setdefault(env.source, []).append(env)
    applied = []
    for source, envelopes in by_source.items():
        consumer = consumer_for(source)
        for start in range(0, len(envelopes), 5):
            applied += await consumer.apply_batch(envelopes[start : start + 5])

    assert applied.count(False) == 4
    assert await snapshot() == one_by_one


async def test_a_refund_without_currency_takes_the_courses_when_the_payment_is_unknown(
    deliver, make_envelope, sessions
):
    course, instructor = uuid.uuid4(), uuid.uuid4()
    await deliver(
        [
            make_envelope(
                s.CoursePublished(
                    course_id=course, instructor_id=instructor, price=900, currency="eur"
                ),
                "2026-03-01T00:00:00+00:00",
            ),
            make_envelope(
                s.PaymentRefunded(
                    payment_id=uuid.uuid4(), user_id=uuid.uuid4(), course_id=course, amount=900
                ),
                "2026-03-03T00:00:00+00:00",
            ),
            make_envelope(
                s.PaymentRefunded(
                    payment_id=uuid.uuid4(), user_id=uuid.uuid4(), course_id=uuid.uuid4(), amount=5
                ),
                "2026-03-03T00:00:00+00:00",
            ),
        ]
    )

    money = {(r["currency"], r["refunded"]) for r in await rows(sessions, platform_revenue_daily)}
    assert money == {("eur", 900), (NO_CURRENCY, 5)}
