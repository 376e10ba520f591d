"""Tables of the ``analytics`` schema.

- ``facts``: every consumed event, once (keyed by the envelope id), with the fields the
  rollups need pulled out into columns. The record everything else is derived from.
- ``courses``: read model of course ownership from course.published/unpublished.v1.
- daily rollups, all derivable from ``facts`` (``rebuild``): ``course_daily`` and
  ``platform_daily`` (counts), ``course_revenue_daily`` and ``platform_revenue_daily``
  (money per currency, integer minor units), and the distinct-learner sets
  ``active_learners`` (day, course, user) and ``platform_active_learners`` (day, user)
  that make the daily active-learner counts exact, and their per-learner summaries
  ``learner_activity`` / ``platform_learner_activity`` (the days as a multirange) that
  make a range's distinct count cheap.
- ``daily_reports``: the stored output of the ``daily-report`` job.

Days are UTC calendar days of the event's time (``envelope.time``), not of its arrival.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import DATEMULTIRANGE, JSONB, UUID

from unpuzzle_common.events.outbox import inbox_table

SCHEMA = "analytics"
metadata = MetaData(schema=SCHEMA)

inbox = inbox_table(metadata)


def _counter(name: str) -> Column:
    return Column(name, BigInteger, nullable=False, server_default=text("0"))


facts = Table(
    "facts",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("type", Text, nullable=False),
    Column("source", Text, nullable=False),
    #: When it happened (the envelope's time) and its UTC day: what the rollups count by.
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("day", Date, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("subject", Text, nullable=False),
    Column("course_id", UUID(as_uuid=True), nullable=True),
    Column("user_id", UUID(as_uuid=True), nullable=True),
    Column("payment_id", UUID(as_uuid=True), nullable=True),
    #: Money in minor units with its lower-case ISO 4217 currency (payments); the
    #: course's currency for course.* events.
    Column("amount", BigInteger, nullable=True),
    Column("currency", String(3), nullable=True),
    Column("rating", SmallInteger, nullable=True),
    Column("tokens", BigInteger, nullable=True),
    Column("cost_micro_usd", BigInteger, nullable=True),
    #: The event's data without personal or bulky fields (see facts.STORED_DATA).
    Column("data", JSONB, nullable=False),
    Index("ix_facts_day_type", "day", "type"),
    Index(
        "ix_facts_course_day", "course_id", "day", postgresql_where=text("course_id IS NOT NULL")
    ),
    Index("ix_facts_payment", "payment_id", postgresql_where=text("payment_id IS NOT NULL")),
)

courses = Table(
    "courses",
    metadata,
    Column("course_id", UUID(as_uuid=True), primary_key=True),
    Column("instructor_id", UUID(as_uuid=True), nullable=False),
    Column("title", Text, nullable=True),
    Column("price", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("is_published", Boolean, nullable=False),
    #: The event the ownership/price/visibility columns come from: a late, older event
    #: never overwrites a newer one (ties broken by event id, so the order of arrival
    #: never matters).
    Column("state_time", DateTime(timezone=True), nullable=False),
    Column("state_event_id", UUID(as_uuid=True), nullable=False),
    #: Likewise for the title, which only some snapshots carry.
    Column("title_time", DateTime(timezone=True), nullable=True),
    Column("title_event_id", UUID(as_uuid=True), nullable=True),
    Index("ix_courses_instructor", "instructor_id"),
)

course_daily = Table(
    "course_daily",
    metadata,
    Column("course_id", UUID(as_uuid=True), primary_key=True),
    Column("day", Date, primary_key=True),
    _counter("enrollments"),
    _counter("revocations"),
    _counter("lesson_completions"),
    _counter("course_completions"),
    _counter("reviews"),
    _counter("rating_sum"),
    _counter("active_learners"),
)

course_revenue_daily = Table(
    "course_revenue_daily",
    metadata,
    Column("course_id", UUID(as_uuid=True), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("currency", String(3), primary_key=True),
    _counter("payments"),
    _counter("revenue"),
    _counter("refunds"),
    _counter("refunded"),
)

platform_daily = Table(
    "platform_daily",
    metadata,
    Column("day", Date, primary_key=True),
    _counter("new_users"),
    _counter("enrollments"),
    _counter("revocations"),
    _counter("lesson_completions"),
    _counter("course_completions"),
    _counter("reviews"),
    _counter("rating_sum"),
    _counter("active_learners"),
    _counter("subscriptions_activated"),
    _counter("subscriptions_canceled"),
    _counter("media_uploads"),
    _counter("ai_requests"),
    _counter("ai_tokens"),
    _counter("ai_cost_micro_usd"),
)

platform_revenue_daily = Table(
    "platform_revenue_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("currency", String(3), primary_key=True),
    _counter("payments"),
    _counter("revenue"),
    _counter("refunds"),
    _counter("refunded"),
)

active_learners = Table(
    "active_learners",
    metadata,
    Column("course_id", UUID(as_uuid=True), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("user_id", UUID(as_uuid=True), primary_key=True),
)

platform_active_learners = Table(
    "platform_active_learners",
    metadata,
    Column("day", Date, primary_key=True),
    Column("user_id", UUID(as_uuid=True), primary_key=True),
)

#: The days each learner was active, per course and platform-wide, as date multiranges:
#: a range's distinct learners are the rows whose days overlap it (``&&``), one row per
#: learner instead of one per learner and day. Derived from the two sets above.
learner_activity = Table(
    "learner_activity",
    metadata,
    Column("course_id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("days", DATEMULTIRANGE, nullable=False),
)

platform_learner_activity = Table(
    "platform_learner_activity",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("days", DATEMULTIRANGE, nullable=False),
    Index("ix_platform_learner_activity_days", "days", postgresql_using="gist"),
)

daily_reports = Table(
    "daily_reports",
    metadata,
    Column("day", Date, primary_key=True),
    Column("generated_at", DateTime(timezone=True), nullable=False),
    Column("report", JSONB, nullable=False),
)

#: Everything ``rebuild`` recomputes from ``facts``, in the order writers lock them.
DERIVED_TABLES = (
    courses,
    active_learners,
    platform_active_learners,
    learner_activity,
    platform_learner_activity,
    course_daily,
    course_revenue_daily,
    platform_daily,
    platform_revenue_daily,
)
