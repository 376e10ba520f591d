"""timed transcript segments on media files

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 21:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "media_files",
        sa.Column("transcript_segments", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema="media",
    )


def downgrade() -> None:
    op.drop_column("media_files", "transcript_segments", schema="media")
