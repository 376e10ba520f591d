"""initial media schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 17:31:23.250929
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from unpuzzle_common.events.outbox import create_event_tables, drop_event_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The event tables are defined once, in unpuzzle_common.events.outbox.
    create_event_tables(op.get_bind(), "media")
    op.create_table(
        "courses",
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("instructor_id", sa.UUID(), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("course_id"),
        schema="media",
    )
    op.create_table(
        "enrollments",
        sa.Column("enrollment_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("enrollment_id"),
        schema="media",
    )
    op.create_index(
        "ix_enrollments_user_course",
        "enrollments",
        ["user_id", "course_id"],
        unique=False,
        schema="media",
    )
    op.create_table(
        "media_files",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("owner_id", sa.UUID(), nullable=False),
        sa.Column("upload_id", sa.UUID(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("storage_key", sa.String(length=512), nullable=False),
        sa.Column("thumbnail_key", sa.String(length=512), nullable=True),
        sa.Column(
            "processing_status", sa.String(length=16), server_default="pending", nullable=False
        ),
        sa.Column("processing_error", sa.Text(), nullable=True),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("duration", sa.Double(), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "processing_status IN ('pending', 'processing', 'ready', 'failed')",
            name="ck_media_files_processing_status",
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="media",
    )
    op.create_index(
        "ix_media_files_owner_created",
        "media_files",
        ["owner_id", "created_at", "id"],
        unique=False,
        schema="media",
    )
    op.create_table(
        "upload_sessions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("owner_id", sa.UUID(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("chunk_size", sa.Integer(), nullable=False),
        sa.Column("total_chunks", sa.Integer(), nullable=False),
        sa.Column("media_id", sa.UUID(), nullable=False),
        sa.Column("storage_key", sa.String(length=512), nullable=False),
        sa.Column("multipart_id", sa.String(length=1024), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('open', 'completed', 'aborted', 'expired', 'rejected')",
            name="ck_upload_sessions_status",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("media_id"),
        schema="media",
    )
    op.create_index(
        "ix_upload_sessions_open_expiry",
        "upload_sessions",
        ["expires_at"],
        unique=False,
        schema="media",
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index(
        "ix_upload_sessions_owner", "upload_sessions", ["owner_id"], unique=False, schema="media"
    )
    op.create_table(
        "course_lessons",
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("lesson_id", sa.UUID(), nullable=False),
        sa.Column("media_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(["course_id"], ["media.courses.course_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("course_id", "lesson_id"),
        schema="media",
    )
    op.create_index(
        "ix_course_lessons_media", "course_lessons", ["media_id"], unique=False, schema="media"
    )
    op.create_table(
        "processing_jobs",
        sa.Column("media_id", sa.UUID(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "not_before",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["media_id"], ["media.media_files.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("media_id"),
        schema="media",
    )
    op.create_index(
        "ix_processing_jobs_due", "processing_jobs", ["not_before"], unique=False, schema="media"
    )
    op.create_table(
        "upload_chunks",
        sa.Column("upload_id", sa.UUID(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("etag", sa.String(length=128), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["upload_id"], ["media.upload_sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("upload_id", "number"),
        schema="media",
    )


def downgrade() -> None:
    drop_event_tables(op.get_bind(), "media")
    op.drop_table("upload_chunks", schema="media")
    op.drop_index("ix_processing_jobs_due", table_name="processing_jobs", schema="media")
    op.drop_table("processing_jobs", schema="media")
    op.drop_index("ix_course_lessons_media", table_name="course_lessons", schema="media")
    op.drop_table("course_lessons", schema="media")
    op.drop_index("ix_upload_sessions_owner", table_name="upload_sessions", schema="media")
    op.drop_index(
        "ix_upload_sessions_open_expiry",
        table_name="upload_sessions",
        schema="media",
        postgresql_where=sa.text("status = 'open'"),
    )
    op.drop_table("upload_sessions", schema="media")
    op.drop_index("ix_media_files_owner_created", table_name="media_files", schema="media")
    op.drop_table("media_files", schema="media")
    op.drop_index("ix_enrollments_user_course", table_name="enrollments", schema="media")
    op.drop_table("enrollments", schema="media")
    op.drop_table("courses", schema="media")
