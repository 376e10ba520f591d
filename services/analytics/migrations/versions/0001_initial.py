"""initial analytics schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 18:01:23.730114
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
        "active_learners",
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.PrimaryKeyConstraint("course_id", "day", "user_id"),
        schema="analytics",
    )
    op.create_table(
        "course_daily",
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("enrollments", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("revocations", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "lesson_completions", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column(
            "course_completions", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("reviews", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("rating_sum", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("active_learners", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("course_id", "day"),
        schema="analytics",
    )
    op.create_table(
        "course_revenue_daily",
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("payments", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("revenue", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("refunds", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("refunded", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("course_id", "day", "currency"),
        schema="analytics",
    )
    op.create_table(
        "courses",
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("instructor_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("price", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("is_published", sa.Boolean(), nullable=False),
        sa.Column("state_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state_event_id", sa.UUID(), nullable=False),
        sa.Column("title_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("title_event_id", sa.UUID(), nullable=True),
        sa.PrimaryKeyConstraint("course_id"),
        schema="analytics",
    )
    op.create_index(
        "ix_courses_instructor", "courses", ["instructor_id"], unique=False, schema="analytics"
    )
    op.create_table(
        "daily_reports",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("report", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("day"),
        schema="analytics",
    )
    op.create_table(
        "facts",
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("course_id", sa.UUID(), nullable=True),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("payment_id", sa.UUID(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("rating", sa.SmallInteger(), nullable=True),
        sa.Column("tokens", sa.BigInteger(), nullable=True),
        sa.Column("cost_micro_usd", sa.BigInteger(), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
        schema="analytics",
    )
    op.create_index(
        "ix_facts_course_day",
        "facts",
        ["course_id", "day"],
        unique=False,
        schema="analytics",
        postgresql_where=sa.text("course_id IS NOT NULL"),
    )
    op.create_index("ix_facts_day_type", "facts", ["day", "type"], unique=False, schema="analytics")
    op.create_index(
        "ix_facts_payment",
        "facts",
        ["payment_id"],
        unique=False,
        schema="analytics",
        postgresql_where=sa.text("payment_id IS NOT NULL"),
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
        sa.PrimaryKeyConstraint("consumer", "event_id"),
        schema="analytics",
    )
    op.create_table(
        "learner_activity",
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("days", postgresql.DATEMULTIRANGE(), nullable=False),
        sa.PrimaryKeyConstraint("course_id", "user_id"),
        schema="analytics",
    )
    op.create_table(
        "platform_active_learners",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.PrimaryKeyConstraint("day", "user_id"),
        schema="analytics",
    )
    op.create_table(
        "platform_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("new_users", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("enrollments", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("revocations", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "lesson_completions", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column(
            "course_completions", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("reviews", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("rating_sum", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("active_learners", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "subscriptions_activated", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column(
            "subscriptions_canceled", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("media_uploads", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("ai_requests", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("ai_tokens", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "ai_cost_micro_usd", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.PrimaryKeyConstraint("day"),
        schema="analytics",
    )
    op.create_table(
        "platform_learner_activity",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("days", postgresql.DATEMULTIRANGE(), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
        schema="analytics",
    )
    op.create_index(
        "ix_platform_learner_activity_days",
        "platform_learner_activity",
        ["days"],
        unique=False,
        schema="analytics",
        postgresql_using="gist",
    )
    op.create_table(
        "platform_revenue_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("payments", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("revenue", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("refunds", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("refunded", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("day", "currency"),
        schema="analytics",
    )


def downgrade() -> None:
    op.drop_table("platform_revenue_daily", schema="analytics")
    op.drop_index(
        "ix_platform_learner_activity_days",
        table_name="platform_learner_activity",
        schema="analytics",
        postgresql_using="gist",
    )
    op.drop_table("platform_learner_activity", schema="analytics")
    op.drop_table("platform_daily", schema="analytics")
    op.drop_table("platform_active_learners", schema="analytics")
    op.drop_table("learner_activity", schema="analytics")
    op.drop_table("inbox", schema="analytics")
    op.drop_index(
        "ix_facts_payment",
        table_name="facts",
        schema="analytics",
        postgresql_where=sa.text("payment_id IS NOT NULL"),
    )
    op.drop_index("ix_facts_day_type", table_name="facts", schema="analytics")
    op.drop_index(
        "ix_facts_course_day",
        table_name="facts",
        schema="analytics",
        postgresql_where=sa.text("course_id IS NOT NULL"),
    )
    op.drop_table("facts", schema="analytics")
    op.drop_table("daily_reports", schema="analytics")
    op.drop_index("ix_courses_instructor", table_name="courses", schema="analytics")
    op.drop_table("courses", schema="analytics")
    op.drop_table("course_revenue_daily", schema="analytics")
    op.drop_table("course_daily", schema="analytics")
    op.drop_table("active_learners", schema="analytics")
