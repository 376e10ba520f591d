"""Tables of the ``courses`` schema.

Ordering of sections and lessons is a ``position`` (0, 1, 2 … without gaps) under a
unique constraint that is ``DEFERRABLE INITIALLY DEFERRED``: a reorder shifts many
rows in one transaction and the constraint is checked once, at commit.

Course aggregates (ratings, enrollments, lessons, duration) are stored on the course
row and kept current by the writes that change them, so the catalog never counts.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR, UUID

from unpuzzle_common.events.outbox import inbox_table, outbox_table

SCHEMA = "courses"
metadata = MetaData(
    schema=SCHEMA,
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    },
)

#: Enrollment states.
ACTIVE = "active"
REVOKED = "revoked"


def _timestamps() -> list[Column]:
    return [
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]


#: Read model of the auth service's users, fed by ``user.registered.v1`` / ``user.updated.v1``.
users = Table(
    "users",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("email", String(254), nullable=False),
    Column("full_name", String(200), nullable=False),
    Column("roles", ARRAY(String(32)), nullable=False),
    #: Time of the event the row reflects: an older event never overwrites a newer one.
    Column("event_time", DateTime(timezone=True), nullable=False),
)

categories = Table(
    "categories",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("slug", String(120), nullable=False, unique=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

_SEARCH_DOCUMENT = (
    "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B')"
)
_RATING_AVG = (
    "CASE WHEN rating_count > 0 THEN round(rating_sum::numeric / rating_count, 2) ELSE 0 END"
)
_LISTED = text("is_published AND deleted_at IS NULL")

courses = Table(
    "courses",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("title", String(200), nullable=False),
    # Made from the title at creation and never changed: links to a course stay valid.
    Column("slug", String(120), nullable=False, unique=True),
    # Sanitised HTML.
    Column("description", Text, nullable=False, server_default=""),
    # No foreign key: the instructor is known from the token, the users read model may lag.
    Column("instructor_id", UUID(as_uuid=True), nullable=False, index=True),
    Column(
        "category_id",
        UUID(as_uuid=True),
        ForeignKey("categories.id", ondelete="SET NULL"),
        nullable=True,
        index=True,
    ),
    # Minor units of ``currency`` (1999 = 19.99); 0 is free.
    Column("price", Integer, nullable=False, server_default="0"),
    Column("currency", String(3), nullable=False, server_default="usd"),
    Column("is_published", Boolean, nullable=False, server_default=text("false")),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    *_timestamps(),
    Column("rating_sum", Integer, nullable=False, server_default="0"),
    Column("rating_count", Integer, nullable=False, server_default="0"),
    Column("rating_avg", Numeric(3, 2), Computed(_RATING_AVG, persisted=True), nullable=False),
    Column("enrollment_count", Integer, nullable=False, server_default="0"),
    Column("lesson_count", Integer, nullable=False, server_default="0"),
    # Seconds, the sum of the lessons' durations.
    Column("total_duration", Integer, nullable=False, server_default="0"),
    Column("search_vector", TSVECTOR, Computed(_SEARCH_DOCUMENT, persisted=True), nullable=False),
    # Raised by a trigger on every UPDATE of the row (migration 0002): the version a
    # cached catalog page records for each course it shows (see cache.py).
    Column("row_version", BigInteger, nullable=False, server_default="0"),
    CheckConstraint("price >= 0", name="price_not_negative"),
    CheckConstraint("currency ~ '^[a-z]{3}$'", name="currency_iso_lower"),
    Index("ix_courses_search_vector", "search_vector", postgresql_using="gin"),
    # The catalog's sorts over listed courses; a backward scan serves the DESC orders.
    Index("ix_courses_listed_newest", "created_at", "id", postgresql_where=_LISTED),
    Index("ix_courses_listed_popular", "enrollment_count", "id", postgresql_where=_LISTED),
    Index("ix_courses_listed_rating", "rating_avg", "rating_count", "id", postgresql_where=_LISTED),
    Index("ix_courses_listed_price", "price", "id", postgresql_where=_LISTED),
)

sections = Table(
    "sections",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column(
        "course_id",
        UUID(as_uuid=True),
        ForeignKey("courses.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("title", String(200), nullable=False),
    Column("position", Integer, nullable=False),
    *_timestamps(),
    UniqueConstraint("course_id", "position", deferrable=True, initially="DEFERRED"),
    CheckConstraint("position >= 0", name="position_not_negative"),
)

lessons = Table(
    "lessons",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    # Denormalised from the section: progress and totals are per course.
    Column(
        "course_id",
        UUID(as_uuid=True),
        ForeignKey("courses.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column(
        "section_id",
        UUID(as_uuid=True),
        ForeignKey("sections.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("title", String(200), nullable=False),
    # Sanitised HTML.
    Column("content", Text, nullable=False, server_default=""),
    Column("media_id", UUID(as_uuid=True), nullable=True),
    Column("duration_seconds", Integer, nullable=True),
    Column("position", Integer, nullable=False),
    *_timestamps(),
    UniqueConstraint("section_id", "position", deferrable=True, initially="DEFERRED"),
    CheckConstraint("position >= 0", name="position_not_negative"),
    CheckConstraint("duration_seconds >= 0", name="duration_not_negative"),
    Index("ix_lessons_media_id", "media_id", postgresql_where=text("media_id IS NOT NULL")),
)

#: Durations learnt from ``media.processed.v1``, for lessons that get the media later.
media_durations = Table(
    "media_durations",
    metadata,
    Column("media_id", UUID(as_uuid=True), primary_key=True),
    Column("owner_id", UUID(as_uuid=True), nullable=False),
    Column("duration_seconds", Integer, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

enrollments = Table(
    "enrollments",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    # No foreign key: a paid enrollment is stored even when the course is not known
    # (yet) — the payment happened; access follows once the course exists.
    Column("course_id", UUID(as_uuid=True), nullable=False, index=True),
    # "free" or the id of the payment that granted it (as in the enrollment events).
    Column("source", String(36), nullable=False),
    Column("status", String(16), nullable=False, server_default=ACTIVE),
    *_timestamps(),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    # Set once, when the student first completed every lesson (course.completed.v1).
    Column("completed_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("user_id", "course_id"),
    CheckConstraint("status IN ('active', 'revoked')", name="status_known"),
)

#: Every payment seen by the enrollment saga: makes it idempotent on the payment id and
#: remembers refunds that arrived before their payment succeeded.
payment_grants = Table(
    "payment_grants",
    metadata,
    Column("payment_id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("course_id", UUID(as_uuid=True), nullable=False),
    # granted: the payment gave access; refunded: it was refunded (before or after).
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("refunded_at", DateTime(timezone=True), nullable=True),
    Index("ix_payment_grants_user_id_course_id", "user_id", "course_id"),
    CheckConstraint("status IN ('granted', 'refunded')", name="status_known"),
)

lesson_progress = Table(
    "lesson_progress",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column(
        "lesson_id",
        UUID(as_uuid=True),
        ForeignKey("lessons.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("course_id", UUID(as_uuid=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_lesson_progress_user_id_course_id", "user_id", "course_id"),
)

reviews = Table(
    "reviews",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column(
        "course_id",
        UUID(as_uuid=True),
        ForeignKey("courses.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("rating", SmallInteger, nullable=False),
    # Sanitised HTML (light formatting only).
    Column("comment", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("course_id", "user_id"),
    CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
    Index("ix_reviews_course_id_created_at_id", "course_id", "created_at", "id"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
