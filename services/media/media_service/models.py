"""Tables of the ``media`` schema.

- ``upload_sessions`` / ``upload_chunks``: resumable uploads in progress (one S3
  multipart upload each; a chunk is a part);
- ``media_files``: stored files with their processing status, metadata and transcript;
- ``processing_jobs``: the worker's queue (one row per file still to process);
- ``enrollments`` / ``course_lessons``: the read model, fed by the courses service's
  events, that says which students may see which media;
- ``outbox`` / ``inbox``: the event plumbing of libs/common.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
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
from sqlalchemy.dialects.postgresql import JSONB, UUID

from unpuzzle_common.events.outbox import inbox_table, outbox_table

SCHEMA = "media"
metadata = MetaData(schema=SCHEMA)

# Upload session states.
OPEN = "open"
COMPLETED = "completed"
ABORTED = "aborted"
EXPIRED = "expired"
REJECTED = "rejected"
UPLOAD_STATES = (OPEN, COMPLETED, ABORTED, EXPIRED, REJECTED)

# Processing states of a media file.
PENDING = "pending"
PROCESSING = "processing"
READY = "ready"
FAILED = "failed"
PROCESSING_STATES = (PENDING, PROCESSING, READY, FAILED)


def _created_at() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _updated_at() -> Column:
    return Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name)


upload_sessions = Table(
    "upload_sessions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("owner_id", UUID(as_uuid=True), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("file_size", BigInteger, nullable=False),
    Column("chunk_size", Integer, nullable=False),
    Column("total_chunks", Integer, nullable=False),
    # The media file this upload becomes (its id is chosen up front: it names the object).
    Column("media_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("storage_key", String(512), nullable=False),
    # The store's multipart upload id.
    Column("multipart_id", String(1024), nullable=False),
    Column("status", String(16), nullable=False, server_default=OPEN),
    Column("status_reason", Text, nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    _created_at(),
    _updated_at(),
    _one_of("status", UPLOAD_STATES, "ck_upload_sessions_status"),
    Index("ix_upload_sessions_owner", "owner_id"),
    Index("ix_upload_sessions_open_expiry", "expires_at", postgresql_where=text("status = 'open'")),
)

upload_chunks = Table(
    "upload_chunks",
    metadata,
    Column(
        "upload_id",
        UUID(as_uuid=True),
        ForeignKey(upload_sessions.c.id, ondelete="CASCADE"),
        primary_key=True,
    ),
    # 0-based, as in the API; the S3 part number is number + 1.
    Column("number", Integer, primary_key=True),
    Column("size", Integer, nullable=False),
    Column("md5", String(32), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("etag", String(128), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

media_files = Table(
    "media_files",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("owner_id", UUID(as_uuid=True), nullable=False),
    Column("upload_id", UUID(as_uuid=True), nullable=True),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("storage_key", String(512), nullable=False),
    Column("thumbnail_key", String(512), nullable=True),
    Column("processing_status", String(16), nullable=False, server_default=PENDING),
    Column("processing_error", Text, nullable=True),
    # What processing learnt: duration, codecs, width, height, bit rate...
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("duration", Double, nullable=True),
    Column("transcript", Text, nullable=True),
    # [{"start", "end", "text"}] in seconds, when the transcription service gave them.
    Column("transcript_segments", JSONB, nullable=True),
    Column("processed_at", DateTime(timezone=True), nullable=True),
    _created_at(),
    _updated_at(),
    _one_of("processing_status", PROCESSING_STATES, "ck_media_files_processing_status"),
    Index("ix_media_files_owner_created", "owner_id", "created_at", "id"),
)

processing_jobs = Table(
    "processing_jobs",
    metadata,
    Column(
        "media_id",
        UUID(as_uuid=True),
        ForeignKey(media_files.c.id, ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("not_before", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Set while a worker holds the job; a lapsed lease means the worker died.
    Column("leased_until", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    _created_at(),
    Index("ix_processing_jobs_due", "not_before"),
)

#: Enrollments as the courses service announced them (latest event per enrollment wins).
enrollments = Table(
    "enrollments",
    metadata,
    Column("enrollment_id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("course_id", UUID(as_uuid=True), nullable=False),
    Column("active", Boolean, nullable=False),
    # Time of the event that set this state: an older event never overrides it.
    Column("event_time", DateTime(timezone=True), nullable=False),
    Index("ix_enrollments_user_course", "user_id", "course_id"),
)

#: The course snapshot each published course's lessons came from.
courses = Table(
    "courses",
    metadata,
    Column("course_id", UUID(as_uuid=True), primary_key=True),
    Column("instructor_id", UUID(as_uuid=True), nullable=False),
    Column("published", Boolean, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
)

#: Which media each lesson of a course uses (from course.published.v1 snapshots).
course_lessons = Table(
    "course_lessons",
    metadata,
    Column(
        "course_id",
        UUID(as_uuid=True),
        ForeignKey(courses.c.course_id, ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("lesson_id", UUID(as_uuid=True), primary_key=True),
    Column("media_id", UUID(as_uuid=True), nullable=False),
    Index("ix_course_lessons_media", "media_id"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
