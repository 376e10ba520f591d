"""initial courses schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 17:22:11.856522
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "categories",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("slug", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_categories")),
        sa.UniqueConstraint("name", name=op.f("uq_categories_name")),
        sa.UniqueConstraint("slug", name=op.f("uq_categories_slug")),
        schema="courses",
    )
    op.create_table(
        "enrollments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("source", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
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
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'revoked')", name=op.f("ck_enrollments_status_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
        sa.UniqueConstraint("user_id", "course_id", name=op.f("uq_enrollments_user_id_course_id")),
        schema="courses",
    )
    op.create_index(
        op.f("ix_enrollments_course_id"),
        "enrollments",
        ["course_id"],
        unique=False,
        schema="courses",
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_inbox")),
        schema="courses",
    )
    op.create_table(
        "media_durations",
        sa.Column("media_id", sa.UUID(), nullable=False),
        sa.Column("owner_id", sa.UUID(), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("media_id", name=op.f("pk_media_durations")),
        schema="courses",
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("traceparent", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
        schema="courses",
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        unique=False,
        schema="courses",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "payment_grants",
        sa.Column("payment_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('granted', 'refunded')", name=op.f("ck_payment_grants_status_known")
        ),
        sa.PrimaryKeyConstraint("payment_id", name=op.f("pk_payment_grants")),
        schema="courses",
    )
    op.create_index(
        "ix_payment_grants_user_id_course_id",
        "payment_grants",
        ["user_id", "course_id"],
        unique=False,
        schema="courses",
    )
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("roles", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        schema="courses",
    )
    op.create_table(
        "courses",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("instructor_id", sa.UUID(), nullable=False),
        sa.Column("category_id", sa.UUID(), nullable=True),
        sa.Column("price", sa.Integer(), server_default="0", nullable=False),
        sa.Column("currency", sa.String(length=3), server_default="usd", nullable=False),
        sa.Column("is_published", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.Column("rating_sum", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rating_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "rating_avg",
            sa.Numeric(precision=3, scale=2),
            sa.Computed(
                "CASE WHEN rating_count > 0 "
                "THEN round(rating_sum::numeric / rating_count, 2) ELSE 0 END",
                persisted=True,
            ),
            nullable=False,
        ),
        sa.Column("enrollment_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("lesson_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_duration", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed(
                "setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A') || "
                "setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'B')",
                persisted=True,
            ),
            nullable=False,
        ),
        sa.CheckConstraint("currency ~ '^[a-z]{3}$'", name=op.f("ck_courses_currency_iso_lower")),
        sa.CheckConstraint("price >= 0", name=op.f("ck_courses_price_not_negative")),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["courses.categories.id"],
            name=op.f("fk_courses_category_id_categories"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_courses")),
        sa.UniqueConstraint("slug", name=op.f("uq_courses_slug")),
        schema="courses",
    )
    op.create_index(
        op.f("ix_courses_category_id"), "courses", ["category_id"], unique=False, schema="courses"
    )
    op.create_index(
        op.f("ix_courses_instructor_id"),
        "courses",
        ["instructor_id"],
        unique=False,
        schema="courses",
    )
    op.create_index(
        "ix_courses_listed_newest",
        "courses",
        ["created_at", "id"],
        unique=False,
        schema="courses",
        postgresql_where=sa.text("is_published AND deleted_at IS NULL"),
    )
    op.create_index(
        "ix_courses_listed_popular",
        "courses",
        ["enrollment_count", "id"],
        unique=False,
        schema="courses",
        postgresql_where=sa.text("is_published AND deleted_at IS NULL"),
    )
    op.create_index(
        "ix_courses_listed_price",
        "courses",
        ["price", "id"],
        unique=False,
        schema="courses",
        postgresql_where=sa.text("is_published AND deleted_at IS NULL"),
    )
    op.create_index(
        "ix_courses_listed_rating",
        "courses",
        ["rating_avg", "rating_count", "id"],
        unique=False,
        schema="courses",
        postgresql_where=sa.text("is_published AND deleted_at IS NULL"),
    )
    op.create_index(
        "ix_courses_search_vector",
        "courses",
        ["search_vector"],
        unique=False,
        schema="courses",
        postgresql_using="gin",
    )
    op.create_table(
        "reviews",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name=op.f("ck_reviews_rating_range")),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.courses.id"],
            name=op.f("fk_reviews_course_id_courses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint("course_id", "user_id", name=op.f("uq_reviews_course_id_user_id")),
        schema="courses",
    )
    op.create_index(
        "ix_reviews_course_id_created_at_id",
        "reviews",
        ["course_id", "created_at", "id"],
        unique=False,
        schema="courses",
    )
    op.create_table(
        "sections",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
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
        sa.CheckConstraint("position >= 0", name=op.f("ck_sections_position_not_negative")),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.courses.id"],
            name=op.f("fk_sections_course_id_courses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sections")),
        sa.UniqueConstraint(
            "course_id",
            "position",
            deferrable=True,
            initially="DEFERRED",
            name=op.f("uq_sections_course_id_position"),
        ),
        schema="courses",
    )
    op.create_table(
        "lessons",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("section_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("content", sa.Text(), server_default="", nullable=False),
        sa.Column("media_id", sa.UUID(), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
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
        sa.CheckConstraint("duration_seconds >= 0", name=op.f("ck_lessons_duration_not_negative")),
        sa.CheckConstraint("position >= 0", name=op.f("ck_lessons_position_not_negative")),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.courses.id"],
            name=op.f("fk_lessons_course_id_courses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["section_id"],
            ["courses.sections.id"],
            name=op.f("fk_lessons_section_id_sections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lessons")),
        sa.UniqueConstraint(
            "section_id",
            "position",
            deferrable=True,
            initially="DEFERRED",
            name=op.f("uq_lessons_section_id_position"),
        ),
        schema="courses",
    )
    op.create_index(
        op.f("ix_lessons_course_id"), "lessons", ["course_id"], unique=False, schema="courses"
    )
    op.create_index(
        "ix_lessons_media_id",
        "lessons",
        ["media_id"],
        unique=False,
        schema="courses",
        postgresql_where=sa.text("media_id IS NOT NULL"),
    )
    op.create_table(
        "lesson_progress",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("lesson_id", sa.UUID(), nullable=False),
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column(
            "completed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["lesson_id"],
            ["courses.lessons.id"],
            name=op.f("fk_lesson_progress_lesson_id_lessons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "lesson_id", name=op.f("pk_lesson_progress")),
        schema="courses",
    )
    op.create_index(
        "ix_lesson_progress_user_id_course_id",
        "lesson_progress",
        ["user_id", "course_id"],
        unique=False,
        schema="courses",
    )


def downgrade() -> None:
    op.drop_index(
        "ix_lesson_progress_user_id_course_id", table_name="lesson_progress", schema="courses"
    )
    op.drop_table("lesson_progress", schema="courses")
    op.drop_index(
        "ix_lessons_media_id",
        table_name="lessons",
        schema="courses",
        postgresql_where=sa.text("media_id IS NOT NULL"),
    )
    op.drop_index(op.f("ix_lessons_course_id"), table_name="lessons", schema="courses")
    op.drop_table("lessons", schema="courses")
    op.drop_table("sections", schema="courses")
    op.drop_index("ix_reviews_course_id_created_at_id", table_name="reviews", schema="courses")
    op.drop_table("reviews", schema="courses")
    op.drop_index(
        "ix_courses_search_vector", table_name="courses", schema="courses", postgresql_using="gin"
    )
    op.drop_index(
        "ix_courses_listed_rating",
        table_name="courses",
        schema="courses",
        postgresql_where=sa.text("is_published AND deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_courses_listed_price",
        table_name="courses",
        schema="courses",
        postgresql_where=sa.text("is_published AND deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_courses_listed_popular",
        table_name="courses",
        schema="courses",
        postgresql_where=sa.text("is_published AND deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_courses_listed_newest",
        table_name="courses",
        schema="courses",
        postgresql_where=sa.text("is_published AND deleted_at IS NULL"),
    )
    op.drop_index(op.f("ix_courses_instructor_id"), table_name="courses", schema="courses")
    op.drop_index(op.f("ix_courses_category_id"), table_name="courses", schema="courses")
    op.drop_table("courses", schema="courses")
    op.drop_table("users", schema="courses")
    op.drop_index(
        "ix_payment_grants_user_id_course_id", table_name="payment_grants", schema="courses"
    )
    op.drop_table("payment_grants", schema="courses")
    op.drop_index(
        "ix_outbox_unpublished",
        table_name="outbox",
        schema="courses",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("outbox", schema="courses")
    op.drop_table("media_durations", schema="courses")
    op.drop_table("inbox", schema="courses")
    op.drop_index(op.f("ix_enrollments_course_id"), table_name="enrollments", schema="courses")
    op.drop_table("enrollments", schema="courses")
    op.drop_table("categories", schema="courses")
