"""Tables of the ``ai`` schema.

Owned data: tutor sessions and their messages, usage per user per day, and the passage
index. Read models fed by other services' events: course access (course.*), lesson
outlines (course.published.v1 ``lessons``), enrollments (enrollment.*), completed lessons
(lesson.completed.v1) and plans (subscription.*).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Computed,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, UUID

from unpuzzle_common.events.outbox import inbox_table, outbox_table

SCHEMA = "ai"
#: Text search configuration of the passage index.
TS_CONFIG = "english"

metadata = MetaData(schema=SCHEMA)


def _now(name: str) -> Column:
    return Column(name, DateTime(timezone=True), nullable=False, server_default=func.now())


tutor_sessions = Table(
    "sessions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("course_id", UUID(as_uuid=True), nullable=True),
    Column("lesson_id", UUID(as_uuid=True), nullable=True),
    Column("session_type", String(16), nullable=False),
    _now("created_at"),
    _now("updated_at"),
    Index("ix_sessions_user_created", "user_id", "created_at", "id"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column(
        "session_id",
        UUID(as_uuid=True),
        ForeignKey(tutor_sessions.c.id, ondelete="CASCADE"),
        nullable=False,
    ),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("citations", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    #: Tokens of this message: the prompt and answer of an assistant message (the
    #: billed total), the estimated size of a user message.
    Column("tokens", Integer, nullable=False, server_default=text("0")),
    Column("prompt_tokens", Integer, nullable=False, server_default=text("0")),
    Column("completion_tokens", Integer, nullable=False, server_default=text("0")),
    Column("cost_micro_usd", BigInteger, nullable=False, server_default=text("0")),
    #: "complete", or "interrupted" when the client left a streamed answer early.
    Column("status", String(16), nullable=False, server_default="complete"),
    Column("provider", String(32), nullable=True),
    Column("model", String(128), nullable=True),
    Column("prompt_version", String(32), nullable=True),
    _now("created_at"),
    Index("ix_messages_session_created", "session_id", "created_at", "id"),
)

#: The durable record of usage (Redis holds the live counters the limit is checked on).
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("requests", Integer, nullable=False, server_default=text("0")),
    Column("tokens", BigInteger, nullable=False, server_default=text("0")),
    Column("cost_micro_usd", BigInteger, nullable=False, server_default=text("0")),
)

#: Grounding text: lesson content (course_id + lesson_id) or transcripts (media_id,
#: with time offsets). Transcript passages are tied to courses through course_lessons.
passages = Table(
    "passages",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    #: "lesson" or "transcript".
    Column("source", String(16), nullable=False),
    Column("course_id", UUID(as_uuid=True), nullable=True),
    Column("lesson_id", UUID(as_uuid=True), nullable=True),
    Column("media_id", UUID(as_uuid=True), nullable=True),
    Column("position", Integer, nullable=False),
    Column("content", Text, nullable=False),
    Column("start_seconds", Float, nullable=True),
    Column("end_seconds", Float, nullable=True),
    Column("tsv", TSVECTOR, Computed(f"to_tsvector('{TS_CONFIG}', content)", persisted=True)),
    Index("ix_passages_tsv", "tsv", postgresql_using="gin"),
    Index("ix_passages_course", "course_id"),
    Index("ix_passages_lesson", "lesson_id"),
    Index("ix_passages_media", "media_id"),
)

#: Who may use the tutor on a course besides enrolled students: its instructor.
courses = Table(
    "courses",
    metadata,
    Column("course_id", UUID(as_uuid=True), primary_key=True),
    Column("instructor_id", UUID(as_uuid=True), nullable=False),
    Column("title", Text, nullable=True),
    Column("published", Boolean, nullable=False),
    #: Time of the event that wrote this row: older events are ignored.
    Column("event_time", DateTime(timezone=True), nullable=False),
)

#: The lessons of a course (from course.published.v1 ``lessons``): the learning path,
#: titles for citations and the media → lesson link of transcripts.
course_lessons = Table(
    "course_lessons",
    metadata,
    Column("course_id", UUID(as_uuid=True), primary_key=True),
    Column("lesson_id", UUID(as_uuid=True), primary_key=True),
    Column("title", Text, nullable=False),
    Column("position", Integer, nullable=False),
    Column("media_id", UUID(as_uuid=True), nullable=True),
    #: sha256 of the indexed content: an unchanged lesson is not re-indexed.
    Column("content_hash", String(64), nullable=True),
    Index("ix_course_lessons_media", "media_id"),
)

enrollments = Table(
    "enrollments",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("course_id", UUID(as_uuid=True), primary_key=True),
    Column("enrollment_id", UUID(as_uuid=True), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
)

completed_lessons = Table(
    "completed_lessons",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("lesson_id", UUID(as_uuid=True), primary_key=True),
    Column("course_id", UUID(as_uuid=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=False),
    Index("ix_completed_lessons_user_course", "user_id", "course_id"),
)

#: The user's plan (subscription.*); no row, or a null limit, means the free plan.
plans = Table(
    "plans",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("plan", String(64), nullable=False),
    Column("ai_daily_limit", Integer, nullable=True),
    Column("active", Boolean, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
